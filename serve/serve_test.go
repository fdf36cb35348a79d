package serve_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver"
	"github.com/nvmeperf/nvmeperf/driver/nvmetcp"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/driver/uring"
	"github.com/nvmeperf/nvmeperf/serve"
)

func memConfig(size int) serve.Config {
	return serve.Config{Namespaces: []target.Target{newMemTarget(size, 512)}}
}

func TestBringUpAndIdentify(t *testing.T) {
	s, addr := startServer(t, serve.Config{
		Namespaces:    []target.Target{newMemTarget(1<<20, 512), newMemTarget(2<<20, 4096)},
		InCapsuleData: 4096,
	})
	h := dialHost(t, addr, nvmetcp.Digests{})
	cpl := h.connect(0, 32, spec.ControllerIDDynamic, serve.DefaultNQN, 0)
	if !cpl.StatusField().OK() {
		t.Fatalf("Connect: %s", cpl.StatusField())
	}
	cntlid := uint16(cpl.DW0)
	if cntlid == 0 || cntlid >= 0xFFF0 {
		t.Fatalf("allocated CNTLID %#x", cntlid)
	}
	capv, st := h.propGet(spec.RegCAP, true)
	if !st.OK() {
		t.Fatal(st)
	}
	if c := spec.CAP(capv); c.MQES() != serve.DefaultQueueSize-1 || c.TO() == 0 || c.CSS()&1 == 0 {
		t.Fatalf("CAP %s", c)
	}
	if vs, _ := h.propGet(spec.RegVS, false); spec.VS(vs).String() != "1.3.0" {
		t.Fatalf("VS %s", spec.VS(vs))
	}
	if csts, _ := h.propGet(spec.RegCSTS, false); spec.CSTS(csts).RDY() {
		t.Fatal("CSTS.RDY before CC.EN")
	}
	// Identify before enabling is a command sequence error.
	if _, st := h.identify(spec.CNSController, 0); st.SC() != spec.SCCommandSequenceError {
		t.Fatalf("Identify before enable: %s", st)
	}
	h.enable()
	if v, _ := h.propGet(spec.RegCC, false); !spec.CC(v).EN() {
		t.Fatalf("CC reads back %s", spec.CC(v))
	}
	id, st := h.identify(spec.CNSController, 0)
	if !st.OK() {
		t.Fatal(st)
	}
	if got := le16(id, 78); got != cntlid {
		t.Errorf("Identify CNTLID %d, Connect said %d", got, cntlid)
	}
	if got := le32(id, spec.IdentifyOffsetIOCCSZ); got != (64+4096)/16 {
		t.Errorf("IOCCSZ %d", got)
	}
	if got := le32(id, spec.IdentifyOffsetIORCSZ); got != 1 {
		t.Errorf("IORCSZ %d", got)
	}
	if got := le16(id, spec.IdentifyOffsetICDOFF); got != 0 {
		t.Errorf("ICDOFF %d", got)
	}
	if got := le32(id, 536); got&3 != 1 || got&(1<<20) == 0 {
		t.Errorf("SGLS %#x: want SGLs and in-capsule offsets", got)
	}
	if got := le16(id, 514); got != serve.DefaultQueueSize {
		t.Errorf("MAXCMD %d", got)
	}
	if got := le32(id, 516); got != 2 {
		t.Errorf("NN %d", got)
	}
	if got := id[spec.IdentifyOffsetCNTRLTYPE]; got != spec.ControllerTypeIO {
		t.Errorf("CNTRLTYPE %d", got)
	}
	if got := 4096 << id[77]; got != s.MaxTransfer() {
		t.Errorf("MDTS gives %d bytes, server says %d", got, s.MaxTransfer())
	}
	if got := string(bytes.TrimRight(id[768:1024], "\x00")); got != serve.DefaultNQN {
		t.Errorf("SUBNQN %q", got)
	}
	ns, st := h.identify(spec.CNSNamespace, 2)
	if !st.OK() {
		t.Fatal(st)
	}
	if nsze := binary.LittleEndian.Uint64(ns); nsze != (2<<20)/4096 {
		t.Errorf("NSID 2 NSZE %d", nsze)
	}
	if lbads := ns[130]; lbads != 12 {
		t.Errorf("NSID 2 LBADS %d", lbads)
	}
	list, _ := h.identify(spec.CNSActiveNamespaces, 0)
	if le32(list, 0) != 1 || le32(list, 4) != 2 || le32(list, 8) != 0 {
		t.Errorf("active namespace list % x", list[:12])
	}
	if _, st := h.identify(spec.CNSNamespace, 3); st.SC() != spec.SCInvalidNamespaceOrFormat {
		t.Errorf("Identify NSID 3: %s", st)
	}
	if n := h.setQueues(1000); n != serve.DefaultMaxIOQueues {
		t.Errorf("granted %d I/O queues, want the cap %d", n, serve.DefaultMaxIOQueues)
	}
	ka := &hcmd{}
	ka.sqe.SetOpcodeCID(uint8(spec.AdminKeepAlive), 0)
	h.run(ka)
	if !status(ka).OK() {
		t.Errorf("Keep Alive: %s", status(ka))
	}
	// Shutdown completes.
	ccv, _ := h.propGet(spec.RegCC, false)
	h.propSet(spec.RegCC, ccv|uint64(spec.CCShutdownNormal)<<14)
	if csts, _ := h.propGet(spec.RegCSTS, false); spec.CSTS(csts).SHST() != spec.ShutdownStatusComplete {
		t.Errorf("after shutdown CSTS %s", spec.CSTS(csts))
	}
}

// TestWriteReadBack writes with in-capsule data, with R2T/H2CData in several chunks
// (larger than MAXH2CDATA), reads everything back through C2HData and compares, with
// each combination of digests and of the SUCCESS-flag shortcut.
func TestWriteReadBack(t *testing.T) {
	for _, d := range []nvmetcp.Digests{{}, {Header: true}, {Data: true}, {Header: true, Data: true}} {
		for _, sqflowOff := range []bool{false, true} {
			t.Run(fmt.Sprintf("hdgst=%t,ddgst=%t,sqflow-off=%t", d.Header, d.Data, sqflowOff), func(t *testing.T) {
				_, addr := startServer(t, serve.Config{Namespaces: []target.Target{newMemTarget(4<<20, 512)},
					MaxH2CData: 8192, InCapsuleData: 4096, MaxTransfer: 64 << 10, CPDA: 3})
				admin, cntlid := adminController(t, addr, serve.DefaultNQN, d)
				admin.setQueues(2)
				var cattr uint8
				if sqflowOff {
					cattr = spec.ConnectDisableSQFlowCtrl
				}
				q := ioQueue(t, addr, cntlid, 1, 64, d, cattr)
				q.inCapsule = 4096
				rng := rand.New(rand.NewPCG(1, 2))
				// Sizes: in-capsule (512, 4096), R2T in one chunk (8192), several
				// chunks (64 KiB = MDTS, 8 H2CData PDUs).
				sizes := []int{512, 4096, 4608, 8192, 64 << 10, 12 << 10}
				var writes, reads []*hcmd
				lba := uint64(0)
				for i := 0; i < 40; i++ {
					n := sizes[i%len(sizes)]
					data := make([]byte, n)
					for j := range data {
						data[j] = byte(rng.Uint32())
					}
					writes = append(writes, rw(spec.IOWrite, 1, lba, uint32(n/512), data))
					reads = append(reads, rw(spec.IORead, 1, lba, uint32(n/512), make([]byte, n)))
					lba += uint64(n / 512)
				}
				q.run(writes...) // 40 commands in flight on a 64-entry queue
				for i, w := range writes {
					if !status(w).OK() {
						t.Fatalf("write %d: %s", i, status(w))
					}
				}
				q.run(reads...)
				for i, r := range reads {
					if !status(r).OK() {
						t.Fatalf("read %d: %s", i, status(r))
					}
					if !bytes.Equal(r.read, writes[i].write) {
						t.Fatalf("read %d (%d bytes at LBA %d) differs from what was written", i, len(r.read), r.sqe.SLBA())
					}
				}
				if sqflowOff && q.successSeen != len(reads) {
					t.Errorf("SUCCESS flag on %d of %d reads with SQ flow control disabled", q.successSeen, len(reads))
				}
				if !sqflowOff && q.successSeen != 0 {
					t.Errorf("SUCCESS flag used %d times with SQ flow control on", q.successSeen)
				}
				fl := &hcmd{}
				fl.sqe.SetOpcodeCID(uint8(spec.IOFlush), 0)
				fl.sqe.NSID = 1
				q.run(fl)
				if !status(fl).OK() {
					t.Errorf("Flush: %s", status(fl))
				}
			})
		}
	}
}

func TestIOErrors(t *testing.T) {
	_, addr := startServer(t, memConfig(1<<20))
	admin, cntlid := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{})
	admin.setQueues(1)
	q := ioQueue(t, addr, cntlid, 1, 16, nvmetcp.Digests{}, 0)
	blocks := uint64(1<<20) / 512
	cases := []struct {
		name string
		c    *hcmd
		sct  spec.StatusCodeType
		sc   uint8
	}{
		{"beyond the end", rw(spec.IORead, 1, blocks-1, 2, make([]byte, 1024)), spec.SCTGeneric, spec.SCLBAOutOfRange},
		{"write beyond the end", rw(spec.IOWrite, 1, blocks, 1, make([]byte, 512)), spec.SCTGeneric, spec.SCLBAOutOfRange},
		{"no such namespace", rw(spec.IORead, 2, 0, 1, make([]byte, 512)), spec.SCTGeneric, spec.SCInvalidNamespaceOrFormat},
		{"SGL shorter than NLB", rw(spec.IORead, 1, 0, 2, make([]byte, 512)), spec.SCTGeneric, spec.SCDataSGLLengthInvalid},
		{"above MDTS", rw(spec.IORead, 1, 0, 512, make([]byte, 256<<10)), spec.SCTGeneric, spec.SCInvalidField},
	}
	for _, tc := range cases {
		q.run(tc.c)
		if st := status(tc.c); st.SCT() != tc.sct || st.SC() != tc.sc {
			t.Errorf("%s: status %s, want sct %d sc %#x", tc.name, st, tc.sct, tc.sc)
		}
	}
	bad := &hcmd{}
	bad.sqe.SetOpcodeCID(0x7E, 0)
	bad.sqe.NSID = 1
	q.run(bad)
	if st := status(bad); st.SC() != spec.SCInvalidOpcode {
		t.Errorf("unknown opcode: %s", st)
	}
	// The queue still works after the failures.
	w := rw(spec.IOWrite, 1, 7, 1, bytes.Repeat([]byte{0xA5}, 512))
	r := rw(spec.IORead, 1, 7, 1, make([]byte, 512))
	q.run(w)
	q.run(r)
	if !bytes.Equal(r.read, w.write) {
		t.Error("read back after errors differs")
	}
}

func TestConnectRefusals(t *testing.T) {
	_, addr := startServer(t, memConfig(1<<20))
	h := dialHost(t, addr, nvmetcp.Digests{})
	if cpl := h.connect(0, 32, spec.ControllerIDDynamic, "nqn.2026-01.io.example:other", 0); cpl.StatusField().SC() != spec.SCConnectInvalidParameters {
		t.Errorf("Connect to an unknown NQN: %s", cpl.StatusField())
	} else if cpl.DW0 != spec.ConnectInvalidParameter(true, 256) {
		t.Errorf("IATTR/IPO %#x, want the SUBNQN field", cpl.DW0)
	}
	admin := dialHost(t, addr, nvmetcp.Digests{})
	cpl := admin.connect(0, 32, spec.ControllerIDDynamic, serve.DefaultNQN, 0)
	cntlid := uint16(cpl.DW0)
	// I/O queue before the controller is enabled.
	h2 := dialHost(t, addr, nvmetcp.Digests{})
	if cpl := h2.connect(1, 16, cntlid, serve.DefaultNQN, 0); cpl.StatusField().SC() != spec.SCCommandSequenceError {
		t.Errorf("I/O Connect before enable: %s", cpl.StatusField())
	}
	admin.enable()
	admin.setQueues(1)
	h3 := dialHost(t, addr, nvmetcp.Digests{})
	if cpl := h3.connect(2, 16, cntlid, serve.DefaultNQN, 0); cpl.StatusField().SC() != spec.SCConnectInvalidParameters {
		t.Errorf("I/O Connect to queue 2 of 1: %s", cpl.StatusField())
	}
	h4 := dialHost(t, addr, nvmetcp.Digests{})
	if cpl := h4.connect(1, 16, cntlid+100, serve.DefaultNQN, 0); cpl.StatusField().SC() != spec.SCConnectInvalidParameters {
		t.Errorf("I/O Connect to an unknown controller: %s", cpl.StatusField())
	}
	h5 := dialHost(t, addr, nvmetcp.Digests{})
	h5.hostNQN = "nqn.2014-08.org.nvmexpress:uuid:someone-else"
	if cpl := h5.connect(1, 16, cntlid, serve.DefaultNQN, 0); cpl.StatusField().SC() != spec.SCConnectInvalidParameters {
		t.Errorf("I/O Connect from another host: %s", cpl.StatusField())
	}
	h6 := dialHost(t, addr, nvmetcp.Digests{})
	if cpl := h6.connect(1, 1024, cntlid, serve.DefaultNQN, 0); cpl.StatusField().SC() != spec.SCConnectInvalidParameters {
		t.Errorf("I/O Connect with 1024 entries (MQES 127): %s", cpl.StatusField())
	}
}

func TestDiscovery(t *testing.T) {
	_, addr := startServer(t, memConfig(1<<20))
	h, _ := adminController(t, addr, spec.DiscoveryNQN, nvmetcp.Digests{})
	id, st := h.identify(spec.CNSController, 0)
	if !st.OK() {
		t.Fatal(st)
	}
	if id[spec.IdentifyOffsetCNTRLTYPE] != spec.ControllerTypeDiscovery {
		t.Errorf("CNTRLTYPE %d, want discovery", id[spec.IdentifyOffsetCNTRLTYPE])
	}
	if got := string(bytes.TrimRight(id[768:1024], "\x00")); got != spec.DiscoveryNQN {
		t.Errorf("SUBNQN %q", got)
	}
	c := &hcmd{read: make([]byte, 4096)}
	c.sqe.SetOpcodeCID(uint8(spec.AdminGetLogPage), 0)
	c.sqe.CDW10 = spec.LogDiscovery | (4096/4-1)<<16
	h.run(c)
	if !status(c).OK() {
		t.Fatalf("Get Log Page discovery: %s", status(c))
	}
	var hdr spec.DiscoveryLogHeader
	hdr.Unmarshal(c.read)
	if hdr.NUMREC != 1 {
		t.Fatalf("NUMREC %d", hdr.NUMREC)
	}
	var e spec.DiscoveryLogEntry
	e.Unmarshal(c.read[spec.DiscoveryLogHeaderSize:])
	if e.SubsystemNQN() != serve.DefaultNQN || e.TRTYPE != spec.TransportTCP || e.SUBTYPE != spec.SubsystemTypeNVM {
		t.Errorf("entry %q trtype %d subtype %d", e.SubsystemNQN(), e.TRTYPE, e.SUBTYPE)
	}
	if got := e.Address() + ":" + e.ServiceID(); got != addr {
		t.Errorf("entry address %s, want %s", got, addr)
	}
	// A discovery controller has no I/O queues or namespaces.
	if _, st := h.identify(spec.CNSNamespace, 1); st.OK() {
		t.Error("Identify Namespace on the discovery controller succeeded")
	}
}

// TestMalformedPDUs: a peer that breaks the protocol gets a C2HTermReq and a closed
// connection, never a crash; the server keeps serving others.
func TestMalformedPDUs(t *testing.T) {
	_, addr := startServer(t, memConfig(1<<20))
	t.Run("unknown type before ICReq", func(t *testing.T) {
		h := dialHost(t, addr, nvmetcp.Digests{}) // a valid ICReq first…
		raw := []byte{0x42, 0, 8, 0, 8, 0, 0, 0}
		h.w.Raw(raw) // …then garbage
		h.w.Flush()
		expectTermReq(t, h, nvmetcp.FESInvalidHeaderField)
	})
	t.Run("no ICReq", func(t *testing.T) {
		h := &testHost{t: t}
		nc := dialRaw(t, addr)
		h.nc, h.r, h.w = nc, nvmetcp.NewReader(nc, 4096, 1<<20), nvmetcp.NewWriter(nc, 4096)
		var sqe spec.Command
		h.w.CapsuleCmd(&sqe, nil)
		h.w.Flush()
		expectTermReq(t, h, nvmetcp.FESPDUSequenceError)
	})
	t.Run("bad header digest", func(t *testing.T) {
		h := dialHost(t, addr, nvmetcp.Digests{Header: true})
		// A CapsuleResp-sized CapsuleCmd header with a wrong digest.
		b := make([]byte, nvmetcp.CapsuleCmdSize+4)
		b[0], b[1], b[2] = byte(nvmetcp.TypeCapsuleCmd), nvmetcp.FlagHDGST, nvmetcp.CapsuleCmdSize
		binary.LittleEndian.PutUint32(b[4:], uint32(len(b)))
		binary.LittleEndian.PutUint32(b[nvmetcp.CapsuleCmdSize:], 0xDEADBEEF)
		h.w.Raw(b)
		h.w.Flush()
		expectTermReq(t, h, nvmetcp.FESHeaderDigestError)
	})
	t.Run("H2CData without R2T", func(t *testing.T) {
		admin, cntlid := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{})
		admin.setQueues(1)
		q := ioQueue(t, addr, cntlid, 1, 16, nvmetcp.Digests{}, 0)
		q.w.H2CData(7, 3, 0, make([]byte, 512), true)
		q.w.Flush()
		expectTermReq(t, q, nvmetcp.FESInvalidHeaderField)
		// The admin queue and the server are unaffected.
		if _, st := admin.identify(spec.CNSController, 0); !st.OK() {
			t.Errorf("admin queue after the I/O queue's TermReq: %s", st)
		}
	})
	t.Run("too many commands", func(t *testing.T) {
		admin, cntlid := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{})
		admin.setQueues(1)
		q := ioQueue(t, addr, cntlid, 1, 2, nvmetcp.Digests{}, 0)
		// Writes waiting for R2T data hold their slots; a third command overflows
		// the 2-entry queue.
		for i := 0; i < 3; i++ {
			c := rw(spec.IOWrite, 1, 0, 32, nil)
			c.sqe.SetCID(uint16(i))
			nvmetcp.SetCommandData(&c.sqe, 32*512, false)
			q.w.CapsuleCmd(&c.sqe, nil)
		}
		q.w.Flush()
		for {
			ph, err := q.r.Next()
			if err != nil {
				t.Fatalf("want a TermReq, got %v", err)
			}
			if ph.CH.Type == nvmetcp.TypeC2HTermReq {
				if ph.TermReq.FES != nvmetcp.FESPDUSequenceError {
					t.Fatalf("FES %#x", ph.TermReq.FES)
				}
				break
			}
			if ph.CH.Type != nvmetcp.TypeR2T {
				t.Fatalf("unexpected %s", ph.CH.Type)
			}
		}
	})
	// Still serving.
	h, _ := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{})
	if _, st := h.identify(spec.CNSController, 0); !st.OK() {
		t.Fatalf("after malformed peers: %s", st)
	}
}

// TestManyHostsAndQueues runs four hosts with two I/O queues each at once, each queue
// writing and verifying its own region.
func TestManyHostsAndQueues(t *testing.T) {
	_, addr := startServer(t, memConfig(8<<20))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for host := 0; host < 4; host++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ft := &fatalCatcher{TB: t}
			defer func() {
				if r := recover(); r != nil && r != errFatal {
					panic(r)
				}
				if ft.err != nil {
					errs <- ft.err
				}
			}()
			admin, cntlid := adminController(ft, addr, serve.DefaultNQN, nvmetcp.Digests{Data: host%2 == 0})
			admin.setQueues(2)
			var qwg sync.WaitGroup
			for qid := uint16(1); qid <= 2; qid++ {
				q := ioQueue(ft, addr, cntlid, qid, 32, nvmetcp.Digests{Data: host%2 == 0}, 0)
				qwg.Add(1)
				go func() {
					defer qwg.Done()
					base := uint64(host*2+int(qid-1)) * 2048 // 1 MiB per queue
					var ws, rs []*hcmd
					for i := 0; i < 16; i++ {
						d := bytes.Repeat([]byte{byte(host), byte(qid), byte(i)}, 16<<10/3+1)[:16<<10]
						ws = append(ws, rw(spec.IOWrite, 1, base+uint64(i*32), 32, d))
						rs = append(rs, rw(spec.IORead, 1, base+uint64(i*32), 32, make([]byte, 16<<10)))
					}
					if err := q.tryRun(ws...); err != nil {
						errs <- err
						return
					}
					if err := q.tryRun(rs...); err != nil {
						errs <- err
						return
					}
					for i := range rs {
						if !bytes.Equal(rs[i].read, ws[i].write) {
							errs <- fmt.Errorf("host %d queue %d: read %d differs", host, qid, i)
							return
						}
					}
				}()
			}
			qwg.Wait()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSimBackend serves a simulated controller opened through the driver, so I/O goes
// through its queue pairs — and its fault keys reach the host as NVMe statuses.
func TestSimBackend(t *testing.T) {
	targets, ctrl, err := driver.OpenTRID("trtype:sim nssize:16m mdts:4 faillba:100-101 failstatus:read-error", driver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctrl.Close() })
	s, addr := startServer(t, serve.Config{Namespaces: targets})
	if s.MaxTransfer() != 64<<10 {
		t.Errorf("MDTS %d: want the sim's 64 KiB", s.MaxTransfer())
	}
	admin, cntlid := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{Header: true, Data: true})
	admin.setQueues(1)
	q := ioQueue(t, addr, cntlid, 1, 32, nvmetcp.Digests{Header: true, Data: true}, 0)
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	w := rw(spec.IOWrite, 1, 0, 16, data)
	r := rw(spec.IORead, 1, 0, 16, make([]byte, len(data)))
	q.run(w)
	q.run(r)
	if !status(w).OK() || !status(r).OK() || !bytes.Equal(r.read, data) {
		t.Fatalf("write %s, read %s, equal %t", status(w), status(r), bytes.Equal(r.read, data))
	}
	bad := rw(spec.IORead, 1, 100, 1, make([]byte, 4096))
	q.run(bad)
	if st := status(bad); st.SCT() != spec.SCTMediaDataIntegrity || st.SC() != spec.SCUnrecoveredReadError {
		t.Errorf("read of a failing LBA: %s, want the sim's unrecovered read error", st)
	}
}

func TestKeepAliveExpiry(t *testing.T) {
	_, addr := startServer(t, memConfig(1<<20))
	h := dialHost(t, addr, nvmetcp.Digests{})
	cc := spec.ConnectCommand{Opcode: spec.OpcodeFabrics, FCType: uint8(spec.FabricsConnect), SQSIZE: 31, KATO: 100}
	var cd spec.ConnectData
	cd.HostID, cd.CNTLID = h.hostID, spec.ControllerIDDynamic
	cd.SetNQNs(serve.DefaultNQN, h.hostNQN)
	data := make([]byte, spec.ConnectDataSize)
	cd.Marshal(data)
	c := &hcmd{sqe: cc.ToCommand(), write: data}
	h.run(c)
	if !status(c).OK() {
		t.Fatal(status(c))
	}
	start := time.Now()
	_ = h.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := h.r.Next(); err == nil {
		t.Fatal("a PDU arrived on an idle admin queue")
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("closed after %v, before KATO", el)
	}
}

func TestConfigErrors(t *testing.T) {
	mem := []target.Target{newMemTarget(1<<20, 512)}
	for name, cfg := range map[string]serve.Config{
		"no namespaces":   {},
		"bad NQN":         {Namespaces: mem, NQN: "iqn.2026-01.bad"},
		"discovery NQN":   {Namespaces: mem, NQN: spec.DiscoveryNQN},
		"small MAXH2C":    {Namespaces: mem, MaxH2CData: 1024},
		"odd in-capsule":  {Namespaces: mem, InCapsuleData: 100},
		"huge queue":      {Namespaces: mem, QueueSize: 4096},
		"bad CPDA":        {Namespaces: mem, CPDA: 32},
		"tiny MDTS":       {Namespaces: mem, MaxTransfer: 512},
		"odd LBA size":    {Namespaces: []target.Target{newMemTarget(1<<20, 520)}},
		"empty namespace": {Namespaces: []target.Target{newMemTarget(0, 512)}},
	} {
		if _, err := serve.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestLinuxHostBringUp follows the admin sequence the Linux nvme-tcp host runs (and the
// fields it refuses a controller over), so the kernel host has nothing to trip on.
func TestLinuxHostBringUp(t *testing.T) {
	_, addr := startServer(t, memConfig(1<<20))
	h := dialHost(t, addr, nvmetcp.Digests{Header: true})
	cpl := h.connect(0, 32, spec.ControllerIDDynamic, serve.DefaultNQN, 0)
	if !cpl.StatusField().OK() || cpl.DW0>>16 != 0 {
		t.Fatalf("Connect: %s, DW0 %#x (no authentication may be asked)", cpl.StatusField(), cpl.DW0)
	}
	// CC is written with EN=0 first, then EN=1.
	cc := spec.MakeCC(false, 0, 0, 0, spec.SQESizeLog, spec.CQESizeLog)
	if st := h.propSet(spec.RegCC, uint64(cc)); !st.OK() {
		t.Fatal(st)
	}
	h.enable()
	id, _ := h.identify(spec.CNSController, 0)
	if le16(id, spec.IdentifyOffsetKAS) == 0 {
		t.Error("KAS 0: Linux refuses fabrics controllers without keep alive support")
	}
	if le16(id, 78) != uint16(cpl.DW0) {
		t.Error("Identify CNTLID differs from Connect's: Linux rejects the controller")
	}
	if id[512] != 0x66 || id[513] != 0x44 {
		t.Errorf("SQES/CQES %#x/%#x", id[512], id[513])
	}
	// Namespace descriptors (VS ≥ 1.3): a failure here keeps Linux from adding the namespace.
	desc, st := h.identify(0x03, 1)
	if !st.OK() || desc[0] != 2 || desc[1] != 16 {
		t.Fatalf("NS descriptors: %s, % x", st, desc[:4])
	}
	ns, _ := h.identify(spec.CNSNamespace, 1)
	if !bytes.Equal(ns[104:120], desc[4:20]) {
		t.Error("NGUID in Identify Namespace and in the descriptor list differ")
	}
	c := &hcmd{read: make([]byte, 4096)}
	c.sqe.SetOpcodeCID(uint8(spec.AdminIdentify), 0)
	c.sqe.CDW10 = 0x06 // I/O command set specific controller, CSI 0 (NVM)
	h.run(c)
	if !status(c).OK() {
		t.Errorf("Identify CNS 06h: %s", status(c))
	}
	smart := &hcmd{read: make([]byte, 512)}
	smart.sqe.SetOpcodeCID(uint8(spec.AdminGetLogPage), 0)
	smart.sqe.NSID = 0xFFFFFFFF
	smart.sqe.CDW10 = spec.LogSMARTHealth | (512/4-1)<<16
	h.run(smart)
	if !status(smart).OK() {
		t.Errorf("SMART log: %s", status(smart))
	}
	// An AER is held: the Keep Alive sent after it is answered, the AER is not.
	aer := &hcmd{}
	aer.sqe.SetOpcodeCID(uint8(spec.AdminAsyncEventRequest), 0)
	aer.sqe.SetCID(900)
	h.w.CapsuleCmd(&aer.sqe, nil)
	ka := &hcmd{}
	ka.sqe.SetOpcodeCID(uint8(spec.AdminKeepAlive), 0)
	h.run(ka)
	if !status(ka).OK() || ka.cpl.CID == 900 {
		t.Errorf("Keep Alive after an AER: %s (CID %d)", status(ka), ka.cpl.CID)
	}
}

func TestPrematureLastPDU(t *testing.T) {
	_, addr := startServer(t, memConfig(1<<20))
	admin, cntlid := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{})
	admin.setQueues(1)
	q := ioQueue(t, addr, cntlid, 1, 16, nvmetcp.Digests{}, 0)
	c := rw(spec.IOWrite, 1, 0, 32, nil)
	c.sqe.SetCID(1)
	nvmetcp.SetCommandData(&c.sqe, 32*512, false)
	q.w.CapsuleCmd(&c.sqe, nil)
	q.w.Flush()
	ph, err := q.r.Next()
	if err != nil || ph.CH.Type != nvmetcp.TypeR2T {
		t.Fatalf("want an R2T: %v", err)
	}
	q.w.H2CData(1, ph.R2T.TTAG, 0, make([]byte, 4096), true) // LAST with 4 of 16 KiB
	q.w.Flush()
	expectTermReq(t, q, nvmetcp.FESInvalidHeaderField)
}

// BenchmarkServeRead4K measures the target's 4 KiB read path on loopback: a test host
// keeps 32 reads in flight on one I/O queue of a RAM-backed namespace. The host side
// (Go, in the same process) is included in the cost.
func BenchmarkServeRead4K(b *testing.B) {
	b.Run("mem", func(b *testing.B) { benchRead4K(b, memConfig(64<<20)) })
	b.Run("sim", func(b *testing.B) {
		targets, ctrl, err := driver.OpenTRID("trtype:sim nssize:64m", driver.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ctrl.Close() })
		benchRead4K(b, serve.Config{Namespaces: targets})
	})
}

func benchRead4K(b *testing.B, cfg serve.Config) {
	_, addr := startServer(b, cfg)
	info := cfg.Namespaces[0].Info()
	nlb := uint32(4096 / info.LBASize)
	slots := int(info.Capacity / 4096)
	admin, cntlid := adminController(b, addr, serve.DefaultNQN, nvmetcp.Digests{})
	admin.setQueues(1)
	q := ioQueue(b, addr, cntlid, 1, 64, nvmetcp.Digests{}, 0)
	const depth = 32
	cmds := make([]*hcmd, depth)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range cmds {
		cmds[i] = rw(spec.IORead, 1, 0, nlb, make([]byte, 4096))
	}
	b.SetBytes(4096)
	b.ResetTimer()
	for done := 0; done < b.N; done += depth {
		for _, c := range cmds {
			c.done, c.got = false, 0
			c.sqe.SetLBARange(uint64(rng.IntN(slots))*uint64(nlb), nlb)
		}
		q.run(cmds...)
		for _, c := range cmds {
			if !status(c).OK() || c.got != 4096 {
				b.Fatalf("read: %s, %d bytes", status(c), c.got)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "IOPS")
}

// TestAdminQueueLossEndsTheController: when the admin queue's connection goes, the
// controller's I/O queues are closed and its CNTLID no longer accepts I/O queues.
func TestAdminQueueLossEndsTheController(t *testing.T) {
	s, addr := startServer(t, memConfig(1<<20))
	admin, cntlid := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{})
	admin.setQueues(2)
	q := ioQueue(t, addr, cntlid, 1, 16, nvmetcp.Digests{}, 0)
	admin.nc.Close()
	if _, err := q.r.Next(); err == nil {
		t.Fatal("the I/O queue got a PDU after its admin queue closed")
	}
	h := dialHost(t, addr, nvmetcp.Digests{})
	if cpl := h.connect(2, 16, cntlid, serve.DefaultNQN, 0); cpl.StatusField().SC() != spec.SCConnectInvalidParameters {
		t.Errorf("I/O Connect to a dropped controller: %s", cpl.StatusField())
	}
	if st := s.Stats(); st.Controllers != 1 || st.ProtocolFails != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestFileBackend serves a regular file through io_uring and reads back what a host
// wrote, also from the file itself.
func TestFileBackend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ns.img")
	ft, err := uring.Open(path, uring.Options{Writes: true, Size: 8 << 20, BusyPoll: true})
	if err != nil {
		t.Skipf("io_uring on a file is unusable here: %v", err)
	}
	t.Cleanup(func() { ft.Close() })
	_, addr := startServer(t, serve.Config{Namespaces: []target.Target{ft}})
	admin, cntlid := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{Data: true})
	admin.setQueues(1)
	q := ioQueue(t, addr, cntlid, 1, 32, nvmetcp.Digests{Data: true}, 0)
	lba := ft.Info().LBASize
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i*13 + 7)
	}
	slba := uint64(1<<20) / uint64(lba)
	w := rw(spec.IOWrite, 1, slba, uint32(len(data))/lba, data)
	r := rw(spec.IORead, 1, slba, uint32(len(data))/lba, make([]byte, len(data)))
	q.run(w)
	q.run(r)
	if !status(w).OK() || !status(r).OK() || !bytes.Equal(r.read, data) {
		t.Fatalf("write %s, read %s, equal %t", status(w), status(r), bytes.Equal(r.read, data))
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk[1<<20:1<<20+len(data)], data) {
		t.Fatal("the file does not hold what the host wrote")
	}
}

// TestIOPathAllocatesNothing: a read and a write round trip through the target — both
// its goroutines, the PDU layer and the (non-allocating) RAM backend — allocate nothing
// once warm. testing.AllocsPerRun counts every goroutine's allocations, the target's
// included; the host loop here is preallocated too.
func TestIOPathAllocatesNothing(t *testing.T) {
	_, addr := startServer(t, memConfig(1<<20))
	admin, cntlid := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{Header: true, Data: true})
	admin.setQueues(1)
	q := ioQueue(t, addr, cntlid, 1, 16, nvmetcp.Digests{Header: true, Data: true}, 0)
	buf := make([]byte, 4096)
	var rd, wr spec.Command
	rd.SetOpcodeCID(uint8(spec.IORead), 1)
	rd.NSID = 1
	rd.SetLBARange(8, 8)
	nvmetcp.SetCommandData(&rd, 4096, false)
	wr.SetOpcodeCID(uint8(spec.IOWrite), 2)
	wr.NSID = 1
	wr.SetLBARange(8, 8)
	nvmetcp.SetCommandData(&wr, 4096, true)
	var failed error
	round := func() {
		q.w.CapsuleCmd(&wr, buf)
		q.w.CapsuleCmd(&rd, nil)
		if err := q.w.Flush(); err != nil {
			failed = err
			return
		}
		for seen := 0; seen < 2; {
			h, err := q.r.Next()
			if err != nil {
				failed = err
				return
			}
			switch h.CH.Type {
			case nvmetcp.TypeC2HData:
				if err := q.r.ReadData(buf[:h.DataLen]); err != nil {
					failed = err
					return
				}
			case nvmetcp.TypeCapsuleResp:
				if !h.CapsuleResp.CQE.StatusField().OK() {
					failed = errors.New(h.CapsuleResp.CQE.StatusField().String())
					return
				}
				seen++
			}
		}
	}
	for i := 0; i < 50; i++ { // warm up: slices reach their size, the poller its iovecs
		round()
	}
	allocs := testing.AllocsPerRun(500, round)
	if failed != nil {
		t.Fatal(failed)
	}
	if allocs > 0 {
		t.Fatalf("%.2f allocations per write+read round trip, want 0", allocs)
	}
}

// TestTwoNamespaces: the same LBA of two namespaces holds what was written to each, and
// two controllers (two hosts) see the same data.
func TestTwoNamespaces(t *testing.T) {
	_, addr := startServer(t, serve.Config{Namespaces: []target.Target{newMemTarget(1<<20, 512), newMemTarget(1<<20, 4096)}})
	admin, cntlid := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{})
	admin.setQueues(1)
	q := ioQueue(t, addr, cntlid, 1, 16, nvmetcp.Digests{}, 0)
	a, b := bytes.Repeat([]byte{0xAA}, 4096), bytes.Repeat([]byte{0xBB}, 4096)
	q.run(rw(spec.IOWrite, 1, 8, 8, a), rw(spec.IOWrite, 2, 1, 1, b))
	admin2, cntlid2 := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{})
	admin2.setQueues(1)
	if cntlid2 == cntlid {
		t.Fatal("two admin Connects got the same CNTLID")
	}
	q2 := ioQueue(t, addr, cntlid2, 1, 16, nvmetcp.Digests{}, 0)
	r1, r2 := rw(spec.IORead, 1, 8, 8, make([]byte, 4096)), rw(spec.IORead, 2, 1, 1, make([]byte, 4096))
	q2.run(r1, r2)
	if !bytes.Equal(r1.read, a) || !bytes.Equal(r2.read, b) {
		t.Fatal("namespaces mixed up or not shared between controllers")
	}
}
