package sim

import (
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

func cmbConfig() Config {
	cfg := testConfig()
	cfg.CMB = 64 << 10
	return cfg
}

// The CMB is published as QEMU publishes its own: CAP.CMBS, BAR 2 at offset 0, SQs
// only; BAR 2 maps through the Controller and through the Allocator.
func TestCMBRegisters(t *testing.T) {
	h := newHost(t, cmbConfig())
	if !spec.CAP(h.regs.Read64(spec.RegCAP)).CMBS() {
		t.Error("CAP.CMBS clear")
	}
	sz := spec.CMBSZ(h.regs.Read32(spec.RegCMBSZ))
	loc := spec.CMBLOC(h.regs.Read32(spec.RegCMBLOC))
	if sz.Size() != 64<<10 || !sz.SQS() || sz.CQS() || loc.BIR() != 2 || loc.OFST() != 0 {
		t.Errorf("%v, BIR %d OFST %d", sz, loc.BIR(), loc.OFST())
	}
	bar, err := h.alloc.(bus.BARMapper).MapBAR(2)
	if err != nil || bar.Len() != 64<<10 || bar.Addr != cmbBusAddr {
		t.Errorf("MapBAR(2) through the allocator: %d bytes at %#x, %v", bar.Len(), bar.Addr, err)
	}
	if _, err := h.c.MapBAR(4); err == nil {
		t.Error("MapBAR(4) did not fail")
	}
	if v := h.c.Violations(); v.Total != 0 {
		t.Errorf("violations %v: %s", v.Counts, v.Last)
	}
	// Without a CMB the registers stay zero and BAR 2 does not map.
	h2 := newHost(t, testConfig())
	if spec.CAP(h2.regs.Read64(spec.RegCAP)).CMBS() || h2.regs.Read32(spec.RegCMBSZ) != 0 {
		t.Error("CMB registers set without a CMB")
	}
	if _, err := h2.c.MapBAR(2); err == nil {
		t.Error("MapBAR(2) without a CMB did not fail")
	}
}

// An SQ placed in the CMB after CMBMSC enabled it is fetched from the CMB: the
// commands the host writes there run. The CBA need not be the BAR address.
func TestCMBSQFetchedFromControllerMemory(t *testing.T) {
	for _, cba := range []uint64{cmbBusAddr, 0x7700_0000_0000} {
		h := newHost(t, cmbConfig())
		h.regs.Write32(spec.RegCMBMSC+4, uint32(spec.MakeCMBMSC(cba)>>32))
		h.regs.Write32(spec.RegCMBMSC, uint32(spec.MakeCMBMSC(cba)))
		bar, err := h.c.MapBAR(2)
		if err != nil {
			t.Fatal(err)
		}
		writeThroughCMBSQ(t, h, bar.Bytes[8192:], cba+8192)
	}
}

// writeThroughCMBSQ creates I/O queue 1 with its 16-entry SQ at addr, whose memory
// sq is in the CMB, writes 40 blocks through it (laps of the ring, so every slot is
// rewritten) and checks the simulator counted it as a CMB SQ with no violation.
func writeThroughCMBSQ(t *testing.T, h *host, sq []byte, addr uint64) {
	t.Helper()
	q := h.allocQueue(1, 16, 16)
	q.sq = bus.Buffer{Bytes: sq[:16*spec.SQESize], Addr: addr}
	if s := st(h.adminCmd(createCQCmd(1, 16, q.cq.Addr))); !s.OK() {
		t.Fatal(s)
	}
	if s := st(h.adminCmd(createSQCmd(1, 16, q.sq.Addr, 1))); !s.OK() {
		t.Fatalf("create SQ in the CMB at %#x: %v", addr, s)
	}
	buf := h.mustAlloc(4096)
	for i := 0; i < 40; i++ {
		fillPattern(buf.Bytes, byte(i))
		if s := h.rw(q, spec.IOWrite, 1, uint64(i), 1, buf); !s.OK() {
			t.Fatalf("write %d: %v", i, s)
		}
	}
	if n := h.c.Stats().CMBSQs; n != 1 {
		t.Errorf("CMBSQs %d, want 1", n)
	}
	if v := h.c.Violations(); v.Total != 0 {
		t.Fatalf("violations %v: %s", v.Counts, v.Last)
	}
}

// Misuse of the CMB is refused with Invalid Use of Controller Memory Buffer and
// counted: an SQ in the CMB's BAR before CMSE is set, an SQ running past the CMB's end,
// a CQ in the CMB (CMBSZ.CQS is clear). A reset clears CMBMSC.
func TestCMBMisuseCounted(t *testing.T) {
	h := newHost(t, cmbConfig())
	cq := h.mustAlloc(4096)
	if s := st(h.adminCmd(createCQCmd(1, 16, cq.Addr))); !s.OK() {
		t.Fatal(s)
	}
	invalidUse := generic(spec.SCInvalidUseOfCMB)
	check := func(what string, cmd spec.Command, n uint64, contains string) {
		t.Helper()
		wantStatus(t, what, st(h.adminCmd(cmd)), invalidUse)
		v := h.c.Violations()
		if v.Counts[ViolationCMB] != n || !strings.Contains(v.Last, contains) {
			t.Fatalf("%s: %d CMB violations (%s), want %d mentioning %q", what, v.Counts[ViolationCMB], v.Last, n, contains)
		}
	}
	check("SQ in the CMB without CMSE", createSQCmd(1, 16, cmbBusAddr, 1), 1, "CMSE is clear")
	h.regs.Write32(spec.RegCMBMSC+4, uint32(spec.MakeCMBMSC(cmbBusAddr)>>32))
	h.regs.Write32(spec.RegCMBMSC, uint32(spec.MakeCMBMSC(cmbBusAddr)))
	check("SQ past the CMB's end", createSQCmd(1, 128, cmbBusAddr+60<<10, 1), 2, "runs past the end")
	check("CQ in the CMB", createCQCmd(2, 16, cmbBusAddr), 3, "CQS")
	if s := st(h.adminCmd(createSQCmd(1, 16, cmbBusAddr, 1))); !s.OK() {
		t.Fatalf("a good SQ in the CMB: %v", s)
	}
	// A reset forgets CMBMSC.
	h.regs.Write32(spec.RegCC, uint32(goodCC()&^spec.CCEnable))
	h.waitCSTS(func(s spec.CSTS) bool { return !s.RDY() }, "RDY=0")
	if m := spec.CMBMSC(h.regs.Read64(spec.RegCMBMSC)); m != 0 {
		t.Errorf("CMBMSC %#x after a reset, want 0", m)
	}
}

func TestCMBKey(t *testing.T) {
	cfg, err := ParseOptions(map[string]string{"cmb": "2m"})
	if err != nil || cfg.CMB != 2<<20 {
		t.Fatalf("cmb:2m: %d, %v", cfg.CMB, err)
	}
	for _, bad := range []string{"1000", "2g", "x"} {
		if _, err := ParseOptions(map[string]string{"cmb": bad}); err == nil || !strings.Contains(err.Error(), "cmb") {
			t.Errorf("cmb:%s: %v", bad, err)
		}
	}
}

func TestCMBLegacyKey(t *testing.T) {
	cfg, err := ParseOptions(map[string]string{"cmb": "1m", "cmblegacy": "1"})
	if err != nil || !cfg.CMBLegacy || cfg.CMB != 1<<20 {
		t.Fatalf("cmb:1m cmblegacy:1: %+v, %v", cfg, err)
	}
	if _, err := ParseOptions(map[string]string{"cmblegacy": "yes"}); err == nil || !strings.Contains(err.Error(), "cmblegacy") {
		t.Errorf("cmblegacy:yes: %v", err)
	}
	bad := testConfig()
	bad.CMBLegacy = true
	if _, err := New(bad); err == nil || !strings.Contains(err.Error(), "CMBLegacy") {
		t.Errorf("CMBLegacy without a CMB: %v", err)
	}
}

// The NVMe 1.3 scheme (cmblegacy): CAP.CMBS clear, the CMB 4 KiB into BAR 2
// (CMBLOC.OFST 1) and decoded there from the start, without CMBMSC; a write to CMBMSC,
// a register such a controller does not have, is counted, and so is a queue in BAR 2
// before the CMB's offset.
func TestCMBLegacy(t *testing.T) {
	cfg := cmbConfig()
	cfg.CMBLegacy = true
	h := newHost(t, cfg)
	if spec.CAP(h.regs.Read64(spec.RegCAP)).CMBS() {
		t.Error("CAP.CMBS set on a legacy CMB")
	}
	sz := spec.CMBSZ(h.regs.Read32(spec.RegCMBSZ))
	loc := spec.CMBLOC(h.regs.Read32(spec.RegCMBLOC))
	if sz.Size() != 64<<10 || !sz.SQS() || loc.BIR() != 2 || uint64(loc.OFST())*sz.Unit() != cmbLegacyOffset {
		t.Errorf("%v, BIR %d OFST %d", sz, loc.BIR(), loc.OFST())
	}
	bar, err := h.c.MapBAR(2)
	if err != nil || bar.Len() != cmbLegacyOffset+64<<10 {
		t.Fatalf("MapBAR(2): %d bytes, %v; want the CMB and the 4 KiB before it", bar.Len(), err)
	}
	// No CMBMSC written: the legacy CMB is decoded from the start.
	writeThroughCMBSQ(t, h, bar.Bytes[cmbLegacyOffset+8192:], cmbBusAddr+cmbLegacyOffset+8192)
	wantStatus(t, "SQ in BAR 2 before the CMB", st(h.adminCmd(createSQCmd(2, 16, cmbBusAddr, 1))), generic(spec.SCInvalidUseOfCMB))
	h.regs.Write32(spec.RegCMBMSC, uint32(spec.CMBMSCCRE))
	if v := h.c.Violations(); v.Counts[ViolationCMB] != 2 || !strings.Contains(v.Last, "CMBMSC") {
		t.Errorf("after a queue before the CMB and a CMBMSC write: %d CMB violations, last %q", v.Counts[ViolationCMB], v.Last)
	}
}
