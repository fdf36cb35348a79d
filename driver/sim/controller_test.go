package sim

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

func TestRegistersAtReset(t *testing.T) {
	cfg := testConfig()
	cfg.MQES = 255
	cfg.Timeout = 7
	c := newController(t, cfg)
	regs := c.hostRegs
	capReg := spec.CAP(regs.Read64(spec.RegCAP))
	if capReg.MQES() != 255 || !capReg.CQR() || capReg.TO() != 7 || capReg.DSTRD() != 0 ||
		capReg.CSS()&1 != 1 || capReg.MPSMIN() != 0 || capReg.MPSMAX() != 4 {
		t.Errorf("CAP = %v, want MQES 255 CQR TO 7 DSTRD 0 CSS bit 0 MPSMIN 0 MPSMAX 4", capReg)
	}
	if vs := spec.VS(regs.Read32(spec.RegVS)); vs.String() != "1.4.0" {
		t.Errorf("VS = %v, want 1.4.0", vs)
	}
	if regs.Read32(spec.RegCMBLOC) != 0 || regs.Read32(spec.RegCMBSZ) != 0 {
		t.Errorf("CMBLOC/CMBSZ not zero")
	}
	if s := spec.CSTS(regs.Read32(spec.RegCSTS)); s.RDY() || s.CFS() {
		t.Errorf("CSTS at reset = %v", s)
	}
	// Doorbells for every queue fit in BAR0.
	if need := spec.CQHeadDoorbell(uint16(cfg.IOQueues), 0) + 4; regs.Size() < need {
		t.Errorf("BAR0 is %#x bytes, doorbells need %#x", regs.Size(), need)
	}
}

func TestEnableReadyAndReset(t *testing.T) {
	cfg := testConfig()
	cfg.ReadyDelay = 5 * time.Millisecond
	start := time.Now()
	h := newHost(t, cfg)
	if el := time.Since(start); el < cfg.ReadyDelay {
		t.Errorf("RDY after %v, before the ready delay %v", el, cfg.ReadyDelay)
	}
	// An admin command works once ready.
	if st := st(h.adminCmd(adminOp(spec.AdminKeepAlive))); !st.OK() {
		t.Fatalf("keep alive: %v", st)
	}
	// Reset: RDY clears, queues are dropped, and the host can enable again.
	h.regs.Write32(spec.RegCC, 0)
	h.waitCSTS(func(s spec.CSTS) bool { return !s.RDY() }, "RDY=0")
	clear(h.admin.cq.Bytes)
	h.admin.head, h.admin.tail, h.admin.phase = 0, 0, 1
	h.regs.Write32(spec.RegCC, uint32(goodCC()))
	h.waitCSTS(func(s spec.CSTS) bool { return s.RDY() }, "RDY=1 again")
	if st := st(h.adminCmd(adminOp(spec.AdminKeepAlive))); !st.OK() {
		t.Fatalf("keep alive after reset: %v", st)
	}
	if got := h.c.Stats().Resets; got != 1 {
		t.Errorf("Stats.Resets = %d, want 1", got)
	}
}

func TestBadConfigurationSetsCFS(t *testing.T) {
	cases := []struct {
		name string
		cc   spec.CC
		aqa  spec.AQA
		asq  func(h *host) uint64
	}{
		{"MPS 8 KiB", spec.MakeCC(true, 0, 1, 0, 6, 4), spec.MakeAQA(8, 8), nil},
		{"IOSQES 7", spec.MakeCC(true, 0, 0, 0, 7, 4), spec.MakeAQA(8, 8), nil},
		{"IOCQES 5", spec.MakeCC(true, 0, 0, 0, 6, 5), spec.MakeAQA(8, 8), nil},
		{"CSS 1", spec.MakeCC(true, 1, 0, 0, 6, 4), spec.MakeAQA(8, 8), nil},
		{"admin SQ of 1 entry", goodCC(), spec.MakeAQA(1, 8), nil},
		{"ASQ outside DMA memory", goodCC(), spec.MakeAQA(8, 8), func(*host) uint64 { return 0x1000 }},
		{"ASQ not page aligned", goodCC(), spec.MakeAQA(8, 8), func(h *host) uint64 { return h.mustAlloc(8192).Addr + 64 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newController(t, testConfig())
			h := &host{t: t, c: c, regs: c.hostRegs, alloc: c.Allocator()}
			q := h.allocQueue(0, 8, 8)
			asq := q.sq.Addr
			if tc.asq != nil {
				asq = tc.asq(h)
			}
			h.regs.Write32(spec.RegAQA, uint32(tc.aqa))
			h.regs.Write64(spec.RegASQ, asq)
			h.regs.Write64(spec.RegACQ, q.cq.Addr)
			h.regs.Write32(spec.RegCC, uint32(tc.cc))
			s := h.waitCSTS(func(s spec.CSTS) bool { return s.CFS() }, "CFS=1")
			if s.RDY() {
				t.Errorf("CSTS %v: RDY set with a bad configuration", s)
			}
			// Disabling clears the fatal status.
			h.regs.Write32(spec.RegCC, 0)
			h.waitCSTS(func(s spec.CSTS) bool { return !s.CFS() }, "CFS=0 after reset")
		})
	}
}

func TestShutdown(t *testing.T) {
	for _, shn := range []uint8{spec.CCShutdownNormal, spec.CCShutdownAbrupt} {
		h := newHost(t, testConfig())
		cc := spec.MakeCC(true, 0, 0, shn, spec.SQESizeLog, spec.CQESizeLog)
		h.regs.Write32(spec.RegCC, uint32(cc))
		h.waitCSTS(func(s spec.CSTS) bool { return s.SHST() == spec.ShutdownStatusComplete }, "SHST complete")
		// After shutdown the controller processes no commands.
		h.admin.submit(ptr(adminOp(spec.AdminKeepAlive)))
		time.Sleep(5 * time.Millisecond)
		if _, ok := h.admin.reap(true); ok {
			t.Errorf("SHN %d: command completed after shutdown", shn)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestNeverReadyFault(t *testing.T) {
	c := newController(t, testConfig())
	c.Faults().SetNeverReady(true)
	h := &host{t: t, c: c, regs: c.hostRegs, alloc: c.Allocator()}
	q := h.allocQueue(0, 8, 8)
	h.regs.Write32(spec.RegAQA, uint32(spec.MakeAQA(8, 8)))
	h.regs.Write64(spec.RegASQ, q.sq.Addr)
	h.regs.Write64(spec.RegACQ, q.cq.Addr)
	h.regs.Write32(spec.RegCC, uint32(goodCC()))
	time.Sleep(10 * time.Millisecond)
	if s := spec.CSTS(h.regs.Read32(spec.RegCSTS)); s.RDY() || s.CFS() {
		t.Fatalf("CSTS %v with never-ready armed, want RDY=0 CFS=0", s)
	}
	c.Faults().SetNeverReady(false)
	h.waitCSTS(func(s spec.CSTS) bool { return s.RDY() }, "RDY=1 once disarmed")
}

func TestFatalAndFreezeFaults(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.ioQueue(1, 16, 16)
	buf := h.mustAlloc(4096)

	h.c.Faults().SetFrozen(true)
	cmd := ioCmd(spec.IORead, 1, 0, 1)
	h.prps(&cmd, buf.Addr, 4096)
	q.submit(&cmd)
	time.Sleep(5 * time.Millisecond)
	if _, ok := q.reap(true); ok {
		t.Fatal("a frozen controller completed a command")
	}
	h.c.Faults().SetFrozen(false)
	if st := st(q.wait(t)); !st.OK() {
		t.Fatalf("read after thaw: %v", st)
	}

	h.c.Faults().SetFatal()
	h.waitCSTS(func(s spec.CSTS) bool { return s.CFS() }, "CFS=1")
	q.submit(&cmd)
	time.Sleep(5 * time.Millisecond)
	if _, ok := q.reap(true); ok {
		t.Fatal("a controller in fatal state completed a command")
	}
	h.regs.Write32(spec.RegCC, 0)
	h.waitCSTS(func(s spec.CSTS) bool { return !s.CFS() && !s.RDY() }, "CFS=0 RDY=0 after reset")
}

func TestIdentify(t *testing.T) {
	cfg := testConfig()
	cfg.Namespaces = 3
	cfg.LBASize = 512
	cfg.MDTS = 6
	h := newHost(t, cfg)
	buf := h.mustAlloc(4096)

	cmd := adminOp(spec.AdminIdentify)
	cmd.CDW10 = spec.CNSController
	h.prps(&cmd, buf.Addr, 4096)
	if st := st(h.adminCmd(cmd)); !st.OK() {
		t.Fatalf("identify controller: %v", st)
	}
	id := (*spec.IdentifyController)(unsafe.Pointer(&buf.Bytes[0]))
	if id.VID != VendorID || id.Serial() != SerialNumber || id.Model() != ModelNumber || id.Firmware() != Firmware {
		t.Errorf("identity VID %#x SN %q MN %q FR %q", id.VID, id.Serial(), id.Model(), id.Firmware())
	}
	if id.MDTS != 6 || id.SQES != 0x66 || id.CQES != 0x44 || id.NN != 3 || id.SGLS != 0 {
		t.Errorf("MDTS %d SQES %#x CQES %#x NN %d SGLS %d", id.MDTS, id.SQES, id.CQES, id.NN, id.SGLS)
	}
	if id.ONCS&(spec.ONCSDatasetManagement|spec.ONCSWriteZeroes) != spec.ONCSDatasetManagement|spec.ONCSWriteZeroes {
		t.Errorf("ONCS %#x lacks DSM and Write Zeroes", id.ONCS)
	}

	cmd = adminOp(spec.AdminIdentify)
	cmd.CDW10 = spec.CNSNamespace
	cmd.NSID = 2
	h.prps(&cmd, buf.Addr, 4096)
	if st := st(h.adminCmd(cmd)); !st.OK() {
		t.Fatalf("identify namespace: %v", st)
	}
	ns := (*spec.IdentifyNamespace)(unsafe.Pointer(&buf.Bytes[0]))
	if ns.NSZE != cfg.NamespaceSize/512 || ns.NCAP != ns.NSZE || ns.SectorSize() != 512 || ns.NLBAF != 0 || !ns.DeallocatedReadsZeroes() {
		t.Errorf("namespace NSZE %d NCAP %d sector %d NLBAF %d DLFEAT %d", ns.NSZE, ns.NCAP, ns.SectorSize(), ns.NLBAF, ns.DLFEAT)
	}

	cmd.NSID = 4
	wantStatus(t, "identify NSID 4", st(h.adminCmd(cmd)), generic(spec.SCInvalidNamespaceOrFormat))

	cmd = adminOp(spec.AdminIdentify)
	cmd.CDW10 = spec.CNSActiveNamespaces
	cmd.NSID = 1
	h.prps(&cmd, buf.Addr, 4096)
	if st := st(h.adminCmd(cmd)); !st.OK() {
		t.Fatalf("identify active list: %v", st)
	}
	list := (*spec.ActiveNamespaceList)(unsafe.Pointer(&buf.Bytes[0]))
	if ids := list.IDs(); len(ids) != 2 || ids[0] != 2 || ids[1] != 3 {
		t.Errorf("active NSIDs above 1 = %v, want [2 3]", ids)
	}

	cmd.CDW10 = 0x55
	wantStatus(t, "identify CNS 0x55", st(h.adminCmd(cmd)), generic(spec.SCInvalidField))
}

func TestQueueCreateDeleteValidation(t *testing.T) {
	cfg := testConfig()
	cfg.IOQueues = 4
	cfg.MQES = 63
	h := newHost(t, cfg)
	mem := h.mustAlloc(64 * spec.SQESize)
	good := h.ioQueue(1, 8, 8)

	cases := []struct {
		name string
		cmd  spec.Command
		want spec.Status
	}{
		{"CQ qid 0", createCQCmd(0, 8, mem.Addr), specific(spec.SCInvalidQueueIdentifier)},
		{"CQ qid above ioqueues", createCQCmd(5, 8, mem.Addr), specific(spec.SCInvalidQueueIdentifier)},
		{"CQ exists", createCQCmd(1, 8, mem.Addr), specific(spec.SCInvalidQueueIdentifier)},
		{"CQ size 1", createCQCmd(2, 1, mem.Addr), specific(spec.SCInvalidQueueSize)},
		{"CQ size above MQES+1", createCQCmd(2, 65, mem.Addr), specific(spec.SCInvalidQueueSize)},
		{"CQ not contiguous", func() spec.Command { c := createCQCmd(2, 8, mem.Addr); c.CDW11 = 0; return c }(), generic(spec.SCInvalidField)},
		{"CQ outside host memory", createCQCmd(2, 8, 0x4000), generic(spec.SCInvalidField)},
		{"SQ qid 0", createSQCmd(0, 8, mem.Addr, 1), specific(spec.SCInvalidQueueIdentifier)},
		{"SQ exists", createSQCmd(1, 8, mem.Addr, 1), specific(spec.SCInvalidQueueIdentifier)},
		{"SQ size 1", createSQCmd(2, 1, mem.Addr, 1), specific(spec.SCInvalidQueueSize)},
		{"SQ size above MQES+1", createSQCmd(2, 65, mem.Addr, 1), specific(spec.SCInvalidQueueSize)},
		{"SQ on missing CQ", createSQCmd(2, 8, mem.Addr, 3), specific(spec.SCCompletionQueueInvalid)},
		{"SQ on admin CQ", createSQCmd(2, 8, mem.Addr, 0), specific(spec.SCCompletionQueueInvalid)},
		{"delete CQ with SQ attached", func() spec.Command { c := adminOp(spec.AdminDeleteIOCQ); c.CDW10 = 1; return c }(), specific(spec.SCInvalidQueueDeletion)},
		{"delete missing SQ", func() spec.Command { c := adminOp(spec.AdminDeleteIOSQ); c.CDW10 = 3; return c }(), specific(spec.SCInvalidQueueIdentifier)},
		{"delete admin SQ", adminOp(spec.AdminDeleteIOSQ), specific(spec.SCInvalidQueueIdentifier)},
		{"delete missing CQ", func() spec.Command { c := adminOp(spec.AdminDeleteIOCQ); c.CDW10 = 3; return c }(), specific(spec.SCInvalidQueueIdentifier)},
		{"unknown admin opcode", adminOp(0x7F), generic(spec.SCInvalidOpcode)},
	}
	for _, tc := range cases {
		wantStatus(t, tc.name, st(h.adminCmd(tc.cmd)), tc.want)
	}

	// The queue still works, and memory holding it cannot be freed.
	buf := h.mustAlloc(4096)
	if st := h.rw(good, spec.IORead, 1, 0, 1, buf); !st.OK() {
		t.Fatalf("read on queue 1: %v", st)
	}
	if err := h.alloc.Free(good.sq); err == nil {
		t.Error("Free of live SQ memory succeeded")
	}
	// Proper teardown: SQ, then CQ, then the memory.
	del := adminOp(spec.AdminDeleteIOSQ)
	del.CDW10 = 1
	wantStatus(t, "delete SQ 1", st(h.adminCmd(del)), spec.StatusSuccess)
	del = adminOp(spec.AdminDeleteIOCQ)
	del.CDW10 = 1
	wantStatus(t, "delete CQ 1", st(h.adminCmd(del)), spec.StatusSuccess)
	if err := h.alloc.Free(good.sq); err != nil {
		t.Errorf("Free of deleted SQ memory: %v", err)
	}
	// Set Features Number of Queues lowers the allowed QIDs.
	sf := adminOp(spec.AdminSetFeatures)
	sf.CDW10 = spec.FeatureNumberOfQueues
	sf.CDW11 = spec.NumberOfQueues(2, 2)
	cqe := h.adminCmd(sf)
	if nsq, ncq := spec.DecodeNumberOfQueues(cqe.DW0); !cqe.StatusField().OK() || nsq != 2 || ncq != 2 {
		t.Errorf("set number of queues: %v, %d/%d", cqe.StatusField(), nsq, ncq)
	}
	wantStatus(t, "CQ 3 beyond allocated queues", st(h.adminCmd(createCQCmd(3, 8, mem.Addr))), specific(spec.SCInvalidQueueIdentifier))
	sf.CDW11 = spec.NumberOfQueues(100, 100)
	if nsq, _ := spec.DecodeNumberOfQueues(h.adminCmd(sf).DW0); nsq != 4 {
		t.Errorf("number of queues clamped to %d, want 4", nsq)
	}
	gf := adminOp(spec.AdminGetFeatures)
	gf.CDW10 = spec.FeatureNumberOfQueues
	if nsq, _ := spec.DecodeNumberOfQueues(h.adminCmd(gf).DW0); nsq != 4 {
		t.Errorf("get number of queues = %d, want 4", nsq)
	}
	ab := adminOp(spec.AdminAbort)
	if cqe := h.adminCmd(ab); !cqe.StatusField().OK() || cqe.DW0&1 != 1 {
		t.Errorf("abort: %v DW0 %#x, want success with bit 0 (not aborted)", cqe.StatusField(), cqe.DW0)
	}
}

func TestSMARTLog(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.ioQueue(1, 8, 8)
	data := h.mustAlloc(64 << 10)
	for i := 0; i < 4; i++ {
		if st := h.rw(q, spec.IOWrite, 1, uint64(i)*16, 16, data); !st.OK() {
			t.Fatal(st)
		}
	}
	if st := h.rw(q, spec.IORead, 1, 0, 16, data); !st.OK() {
		t.Fatal(st)
	}
	buf := h.mustAlloc(4096)
	cmd := adminOp(spec.AdminGetLogPage)
	cmd.CDW10 = spec.LogSMARTHealth | (spec.SMARTLogSize/4-1)<<16
	h.prps(&cmd, buf.Addr, spec.SMARTLogSize)
	if st := st(h.adminCmd(cmd)); !st.OK() {
		t.Fatalf("get log page: %v", st)
	}
	log := (*spec.SMARTLog)(unsafe.Pointer(&buf.Bytes[0]))
	if temp := binary.LittleEndian.Uint16(log.Temperature[:]); temp < 273 || temp > 373 {
		t.Errorf("temperature %d K", temp)
	}
	if w, r := spec.Counter128(log.HostWriteCommands), spec.Counter128(log.HostReadCommands); w != 4 || r != 1 {
		t.Errorf("host write/read commands %d/%d, want 4/1", w, r)
	}
	// 256 KiB written = 512 units of 512 bytes = 1 data unit (thousands, rounded up).
	if du := spec.Counter128(log.DataUnitsWritten); du != 1 {
		t.Errorf("data units written %d, want 1", du)
	}
	cmd.CDW10 = 0x7E | 3<<16
	wantStatus(t, "unsupported log page", st(h.adminCmd(cmd)), specific(spec.SCInvalidLogPage))
}

func TestReadAfterWritePRPShapes(t *testing.T) {
	cfg := testConfig()
	cfg.MDTS = 10 // 4 MiB: enough pages to need a chained PRP list
	h := newHost(t, cfg)
	q := h.ioQueue(1, 16, 16)
	cases := []struct {
		name   string
		blocks uint32
		offset int // host buffer offset from a page boundary (dword aligned)
	}{
		{"PRP1 only, one block", 1, 0},
		{"PRP1 only, unaligned", 0, 1024}, // 0: 512-byte within one page, set below
		{"PRP1+PRP2", 2, 0},
		{"PRP1+PRP2, unaligned", 1, 100},
		{"PRP list", 8, 0},
		{"PRP list, unaligned", 8, 2048},
		{"chained PRP list", 1024, 0},
		{"chained PRP list, unaligned", 600, 4},
	}
	for i, tc := range cases {
		lbas := tc.blocks
		if lbas == 0 {
			lbas = 1
		}
		n := int(lbas) * 4096
		src := h.mustAlloc(n+tc.offset).Slice(tc.offset, n)
		dst := h.mustAlloc(n+tc.offset).Slice(tc.offset, n)
		fillPattern(src.Bytes, byte(i))
		slba := uint64(i) * 2048
		wantStatus(t, tc.name+" write", h.rw(q, spec.IOWrite, 1, slba, lbas, src), spec.StatusSuccess)
		wantStatus(t, tc.name+" read", h.rw(q, spec.IORead, 1, slba, lbas, dst), spec.StatusSuccess)
		if !bytes.Equal(src.Bytes, dst.Bytes) {
			t.Errorf("%s: data read back differs from data written", tc.name)
		}
	}
}

func TestReadAfterWrite512(t *testing.T) {
	cfg := testConfig()
	cfg.LBASize = 512
	h := newHost(t, cfg)
	q := h.ioQueue(1, 8, 8)
	src := h.mustAlloc(8192).Slice(508, 3*512) // crosses a page boundary
	dst := h.mustAlloc(8192).Slice(12, 3*512)
	fillPattern(src.Bytes, 9)
	wantStatus(t, "write", h.rw(q, spec.IOWrite, 1, 7, 3, src), spec.StatusSuccess)
	wantStatus(t, "read", h.rw(q, spec.IORead, 1, 7, 3, dst), spec.StatusSuccess)
	if !bytes.Equal(src.Bytes, dst.Bytes) {
		t.Error("512-byte blocks read back differ")
	}
	// Neighbouring blocks were not touched.
	one := h.mustAlloc(512)
	fillPattern(one.Bytes, 1)
	wantStatus(t, "read neighbour", h.rw(q, spec.IORead, 1, 10, 1, one), spec.StatusSuccess)
	if !bytes.Equal(one.Bytes, make([]byte, 512)) {
		t.Error("never-written block does not read as zeroes")
	}
}

func TestIOErrors(t *testing.T) {
	cfg := testConfig()
	cfg.Namespaces = 2
	cfg.MDTS = 2 // 16 KiB
	h := newHost(t, cfg)
	q := h.ioQueue(1, 8, 8)
	buf := h.mustAlloc(64 << 10)
	nlbas := cfg.NamespaceSize / 4096

	wantStatus(t, "last block", h.rw(q, spec.IORead, 1, nlbas-1, 1, buf.Slice(0, 4096)), spec.StatusSuccess)
	wantStatus(t, "past the end", h.rw(q, spec.IORead, 1, nlbas-1, 2, buf.Slice(0, 8192)), generic(spec.SCLBAOutOfRange))
	wantStatus(t, "huge SLBA", h.rw(q, spec.IOWrite, 1, 1<<63, 1, buf.Slice(0, 4096)), generic(spec.SCLBAOutOfRange))
	wantStatus(t, "NSID 0", h.rw(q, spec.IORead, 0, 0, 1, buf.Slice(0, 4096)), generic(spec.SCInvalidNamespaceOrFormat))
	wantStatus(t, "NSID 3", h.rw(q, spec.IORead, 3, 0, 1, buf.Slice(0, 4096)), generic(spec.SCInvalidNamespaceOrFormat))
	wantStatus(t, "NSID 2", h.rw(q, spec.IORead, 2, 0, 1, buf.Slice(0, 4096)), spec.StatusSuccess)
	wantStatus(t, "MDTS", h.rw(q, spec.IORead, 1, 0, 4, buf.Slice(0, 16384)), spec.StatusSuccess)
	wantStatus(t, "above MDTS", h.rw(q, spec.IORead, 1, 0, 5, buf.Slice(0, 20480)), generic(spec.SCInvalidField))

	cmd := ioCmd(0x7E, 1, 0, 1)
	wantStatus(t, "unknown opcode", st(h.run(q, cmd)), generic(spec.SCInvalidOpcode))

	cmd = ioCmd(spec.IORead, 1, 0, 1)
	cmd.PRP1 = buf.Addr + 2
	wantStatus(t, "PRP1 not dword aligned", st(h.run(q, cmd)), generic(spec.SCPRPOffsetInvalid))
	cmd = ioCmd(spec.IORead, 1, 0, 2)
	cmd.PRP1, cmd.PRP2 = buf.Addr, buf.Addr+4096+512
	wantStatus(t, "PRP2 with an offset", st(h.run(q, cmd)), generic(spec.SCPRPOffsetInvalid))
	cmd = ioCmd(spec.IORead, 1, 0, 1)
	cmd.PRP1 = uint64(uintptr(unsafe.Pointer(&buf.Bytes[0]))) // a host pointer, not a bus address
	wantStatus(t, "host virtual address", st(h.run(q, cmd)), generic(spec.SCDataTransferError))
	cmd = ioCmd(spec.IOWrite, 1, 0, 1)
	cmd.PRP1 = buf.Addr + uint64(buf.Len()) // just past the buffer, in the gap
	wantStatus(t, "address past the buffer", st(h.run(q, cmd)), generic(spec.SCDataTransferError))
	cmd = ioCmd(spec.IORead, 1, 0, 3)
	cmd.PRP1, cmd.PRP2 = buf.Addr, buf.Addr+4 // list pointer not qword aligned
	wantStatus(t, "PRP list pointer misaligned", st(h.run(q, cmd)), generic(spec.SCPRPOffsetInvalid))
	cmd = ioCmd(spec.IORead, 1, 0, 3)
	list := h.mustAlloc(4096)
	binary.LittleEndian.PutUint64(list.Bytes[0:], buf.Addr+4096)
	binary.LittleEndian.PutUint64(list.Bytes[8:], 0xdead_0000)
	cmd.PRP1, cmd.PRP2 = buf.Addr, list.Addr
	wantStatus(t, "PRP list entry outside memory", st(h.run(q, cmd)), generic(spec.SCDataTransferError))

	flush := ioCmd(spec.IOFlush, 0xFFFFFFFF, 0, 1)
	wantStatus(t, "flush all namespaces", st(h.run(q, flush)), spec.StatusSuccess)
	if s := h.c.Stats(); s.Errors != 12 || s.IOCommands != 16 {
		t.Errorf("stats %+v: want 12 errors in 16 I/O commands", s)
	}
}

func TestDeallocateAndWriteZeroes(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.ioQueue(1, 8, 8)
	data := h.mustAlloc(16 * 4096)
	fillPattern(data.Bytes, 3)
	wantStatus(t, "write", h.rw(q, spec.IOWrite, 1, 100, 16, data), spec.StatusSuccess)
	if got := h.c.Stats().StoreBytes; got != 16*4096 {
		t.Errorf("StoreBytes %d after writing 64 KiB", got)
	}

	ranges := h.mustAlloc(4096)
	put := func(i int, slba uint64, nlb uint32) {
		binary.LittleEndian.PutUint32(ranges.Bytes[16*i+4:], nlb)
		binary.LittleEndian.PutUint64(ranges.Bytes[16*i+8:], slba)
	}
	put(0, 102, 2) // blocks 102-103
	put(1, 110, 3) // blocks 110-112
	dsm := ioCmd(spec.IODatasetManagement, 1, 0, 1)
	dsm.CDW10 = 1 // two ranges
	dsm.CDW11 = spec.DSMDeallocate
	dsm.CDW12 = 0
	h.prps(&dsm, ranges.Addr, 32)
	wantStatus(t, "deallocate", st(h.run(q, dsm)), spec.StatusSuccess)

	wz := ioCmd(spec.IOWriteZeroes, 1, 115, 1)
	wantStatus(t, "write zeroes", st(h.run(q, wz)), spec.StatusSuccess)

	got := h.mustAlloc(16 * 4096)
	wantStatus(t, "read", h.rw(q, spec.IORead, 1, 100, 16, got), spec.StatusSuccess)
	for b := 0; b < 16; b++ {
		blk := got.Bytes[b*4096 : (b+1)*4096]
		zeroed := b == 2 || b == 3 || (b >= 10 && b <= 12) || b == 15
		if zeroed && !bytes.Equal(blk, make([]byte, 4096)) {
			t.Errorf("block %d: not zero after deallocate/write zeroes", 100+b)
		}
		if !zeroed && !bytes.Equal(blk, data.Bytes[b*4096:(b+1)*4096]) {
			t.Errorf("block %d: data changed", 100+b)
		}
	}
	if got := h.c.Stats().StoreBytes; got != 10*4096 {
		t.Errorf("StoreBytes %d after freeing 6 of 16 blocks, want %d", got, 10*4096)
	}

	put(0, 1<<40, 1)
	wantStatus(t, "deallocate out of range", st(h.run(q, dsm)), generic(spec.SCLBAOutOfRange))
}

// A CQ smaller than the work queued must stall fetching, never overwrite entries the host
// has not consumed, and resume once the head doorbell frees room.
func TestCQFullBackPressure(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.allocQueue(1, 32, 4)
	wantStatus(t, "create CQ", st(h.adminCmd(createCQCmd(1, 4, q.cq.Addr))), spec.StatusSuccess)
	wantStatus(t, "create SQ", st(h.adminCmd(createSQCmd(1, 32, q.sq.Addr, 1))), spec.StatusSuccess)
	flush := ioCmd(spec.IOFlush, 1, 0, 1)
	for i := 0; i < 20; i++ {
		q.put(&flush)
	}
	q.ring()
	time.Sleep(5 * time.Millisecond)
	// Room for size-1 = 3 completions; read them without ringing the head doorbell.
	var cids []uint16
	for {
		cqe, ok := q.reap(false)
		if !ok {
			break
		}
		cids = append(cids, cqe.CID)
	}
	if len(cids) != 3 {
		t.Fatalf("%d completions posted into a 4-entry CQ nobody drained, want 3", len(cids))
	}
	if h.c.Stats().CQFullStalls == 0 {
		t.Error("CQFullStalls not counted")
	}
	// Now consume as we go: all 20 arrive, in order, each once.
	atomic32Store(q.cqDB, q.head)
	for len(cids) < 20 {
		cids = append(cids, q.wait(t).CID)
	}
	for i, cid := range cids {
		if cid != uint16(i) {
			t.Fatalf("completion %d has CID %d: entries lost or overwritten (%v)", i, cid, cids)
		}
	}
}

// Many laps of a tiny queue: every completion carries the right phase, CID and SQ head.
func TestPhaseWrap(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.ioQueue(1, 3, 2)
	flush := ioCmd(spec.IOFlush, 1, 0, 1)
	for i := 0; i < 1000; i++ {
		cid := q.submit(&flush)
		cqe := q.wait(t)
		if cqe.CID != cid || cqe.SQHD != uint16(q.tail) || !cqe.StatusField().OK() {
			t.Fatalf("command %d: CQE CID %d SQHD %d status %v, want CID %d SQHD %d", i, cqe.CID, cqe.SQHD, cqe.StatusField(), cid, q.tail)
		}
	}
}

func TestInvalidDoorbellCounted(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.ioQueue(1, 8, 8)
	atomic32Store(q.sqDB, 9) // beyond an 8-entry SQ
	deadline := time.Now().Add(waitLimit)
	for h.c.Stats().InvalidDoorbells == 0 {
		if time.Now().After(deadline) {
			t.Fatal("invalid SQ tail doorbell not counted")
		}
		time.Sleep(100 * time.Microsecond)
	}
	if n := h.c.Stats().InvalidDoorbells; n != 1 {
		t.Errorf("the same bad doorbell counted %d times", n)
	}
	atomic32Store(q.sqDB, 0)
	buf := h.mustAlloc(4096)
	wantStatus(t, "read after a bad doorbell", h.rw(q, spec.IORead, 1, 0, 1, buf), spec.StatusSuccess)
}

func TestAsyncEventRequestsHeld(t *testing.T) {
	h := newHost(t, testConfig())
	for i := 0; i < asyncEventMax; i++ {
		h.admin.submit(ptr(adminOp(spec.AdminAsyncEventRequest)))
	}
	wantStatus(t, "AER over the limit", st(h.adminCmd(adminOp(spec.AdminAsyncEventRequest))), specific(spec.SCAsyncEventLimitExceeded))
	wantStatus(t, "keep alive with AERs held", st(h.adminCmd(adminOp(spec.AdminKeepAlive))), spec.StatusSuccess)
}

// A PRP list may start mid-page; it then has fewer slots before its page ends, and the
// last of them chains to the next list page.
func TestPRPListMidPageChain(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.ioQueue(1, 8, 8)
	src := h.mustAlloc(5 * 4096)
	dst := h.mustAlloc(5 * 4096)
	fillPattern(src.Bytes, 42)
	lists := h.mustAlloc(2 * 4096)
	// First list page: two slots at its end (one data page, then the chain pointer).
	build := func(cmd *spec.Command, data uint64) {
		first := lists.Bytes[4096-16:]
		binary.LittleEndian.PutUint64(first[0:], data+4096)
		binary.LittleEndian.PutUint64(first[8:], lists.Addr+4096)
		second := lists.Bytes[4096:]
		for i := 0; i < 3; i++ {
			binary.LittleEndian.PutUint64(second[8*i:], data+uint64(2+i)*4096)
		}
		cmd.PRP1 = data
		cmd.PRP2 = lists.Addr + 4096 - 16
	}
	w := ioCmd(spec.IOWrite, 1, 40, 5)
	build(&w, src.Addr)
	wantStatus(t, "write", st(h.run(q, w)), spec.StatusSuccess)
	r := ioCmd(spec.IORead, 1, 40, 5)
	build(&r, dst.Addr)
	wantStatus(t, "read", st(h.run(q, r)), spec.StatusSuccess)
	if !bytes.Equal(src.Bytes, dst.Bytes) {
		t.Error("data through a mid-page chained PRP list differs")
	}
	// A chain pointer with a page offset is rejected.
	binary.LittleEndian.PutUint64(lists.Bytes[4096-8:], lists.Addr+4096+64)
	r.PRP2 = lists.Addr + 4096 - 16
	wantStatus(t, "chain pointer with offset", st(h.run(q, r)), generic(spec.SCPRPOffsetInvalid))
}

// Deleting an SQ with timed commands outstanding completes them as aborted.
func TestDeleteSQAbortsPending(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.ioQueue(1, 8, 8)
	if err := h.c.Faults().SetCompletionDelay(time.Minute); err != nil {
		t.Fatal(err)
	}
	flush := ioCmd(spec.IOFlush, 1, 0, 1)
	q.submit(&flush)
	q.submit(&flush)
	time.Sleep(2 * time.Millisecond)
	del := adminOp(spec.AdminDeleteIOSQ)
	del.CDW10 = 1
	wantStatus(t, "delete SQ", st(h.adminCmd(del)), spec.StatusSuccess)
	for i := 0; i < 2; i++ {
		wantStatus(t, "pending flush", st(q.wait(t)), generic(spec.SCAbortedSQDeletion))
	}
}

// An idle controller sleeps: its device thread must not burn a core.
func TestIdleControllerSleeps(t *testing.T) {
	h := newHost(t, testConfig())
	h.ioQueue(1, 8, 8)
	time.Sleep(20 * time.Millisecond) // let the back-off reach its longest sleep
	var before, after unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &before); err != nil {
		t.Skip("getrusage:", err)
	}
	// A spinning device thread would use the whole window; a sleeping one a sliver. The
	// window is long and the bound loose so the garbage collector and the race
	// detector's own threads on a loaded machine do not count against it.
	const window = time.Second
	time.Sleep(window)
	if err := unix.Getrusage(unix.RUSAGE_SELF, &after); err != nil {
		t.Fatal(err)
	}
	cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
	if cpu > window/3 {
		t.Errorf("idle controller used %v of CPU in %v", cpu, window)
	}
}
