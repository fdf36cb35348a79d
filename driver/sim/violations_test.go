package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// waitViolations waits until the controller has counted at least want of kind.
func waitViolations(t *testing.T, c *Controller, kind Violation, want uint64) Violations {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		v := c.Violations()
		if v.Counts[kind] >= want {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: counted %d, want %d (all %v)", kind, v.Counts[kind], want, v.Counts)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func TestNoViolationsInANormalRun(t *testing.T) {
	cfg := testConfig()
	cfg.Regs32 = true
	cfg.Strict = true
	h := newHost(t, cfg)
	q := h.ioQueue(1, 8, 8)
	buf := h.mustAlloc(3 * 4096)
	for i := 0; i < 20; i++ {
		wantStatus(t, "write", h.rw(q, spec.IOWrite, 1, uint64(i)*3, 3, buf), spec.StatusSuccess)
		wantStatus(t, "read", h.rw(q, spec.IORead, 1, uint64(i)*3, 3, buf), spec.StatusSuccess)
	}
	if v := h.c.Violations(); v.Total != 0 || v.Last != "" || h.c.Stats().Violations != 0 {
		t.Fatalf("violations %v (%q) in a run by the rules", v.Counts, v.Last)
	}
	if csts := spec.CSTS(h.regs.Read32(spec.RegCSTS)); csts.CFS() {
		t.Fatalf("strict controller fatal without a violation: %v", csts)
	}
}

func TestRegisterViolationsCounted(t *testing.T) {
	cfg := testConfig()
	cfg.Regs32 = true
	h := newHost(t, cfg)
	h.regs.Write32(spec.RegVS, 0) // read-only
	if v := h.c.Violations(); v.Counts[ViolationReadOnlyWrite] != 1 || !strings.Contains(v.Last, "0x8") {
		t.Fatalf("write to VS: %v (%q)", v.Counts, v.Last)
	}
	_ = h.regs.Read32(spec.SQTailDoorbell(0, 0)) // doorbells are write-only
	if v := h.c.Violations(); v.Counts[ViolationDoorbellRead] != 1 {
		t.Fatalf("doorbell read: %v", v.Counts)
	}
	// bus.MMIO never makes a wide access (Write64 is two dwords, counted as such);
	// a transport that did would report it to the same check.
	h.regs.Write64(spec.RegASQ, h.admin.sq.Addr)
	if v := h.c.Violations(); v.Counts[ViolationWideAccess] != 0 {
		t.Fatalf("lo/hi Write64 counted as wide: %v", v.Counts)
	}
	hostView{h.c}.ObserveAccess(spec.RegASQ, 8, true)
	if v := h.c.Violations(); v.Counts[ViolationWideAccess] != 1 || v.Total != 3 || h.c.Stats().Violations != 3 {
		t.Fatalf("8-byte access under regs32: %v (total %d)", v.Counts, v.Total)
	}
}

func TestDoorbellValueViolations(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.ioQueue(1, 8, 8)
	atomic32Store(q.cqDB, 3) // consumes completions never posted
	flush := ioCmd(spec.IOFlush, 1, 0, 0)
	q.submit(&flush) // the controller looks at the CQ head when it has work for the CQ
	waitViolations(t, h.c, ViolationDoorbellValue, 1)
	atomic32Store(q.cqDB, 0)
	q.wait(t)
	// The device thread may still report the bad CQ head it read before it was put
	// back, so wait for the SQ tail's own report rather than count.
	atomic32Store(q.sqDB, 9) // beyond an 8-entry SQ
	deadline := time.Now().Add(waitLimit)
	for v := h.c.Violations(); !strings.Contains(v.Last, "SQ 1 tail 9"); v = h.c.Violations() {
		if time.Now().After(deadline) {
			t.Fatalf("no violation for SQ tail 9 within %v; last %q (%v)", waitLimit, v.Last, v.Counts)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func TestPRPAndQueueSetupViolations(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.ioQueue(1, 8, 8)
	buf := h.mustAlloc(8192)
	cmd := ioCmd(spec.IORead, 1, 0, 1) // 4 KiB from a dword offset: PRP2 must be a page
	cmd.PRP1 = buf.Addr + 512
	cmd.PRP2 = buf.Addr + 4096 + 8
	cqe := h.run(q, cmd)
	wantStatus(t, "read with a misaligned PRP2", cqe.StatusField(), generic(spec.SCPRPOffsetInvalid))
	if v := h.c.Violations(); v.Counts[ViolationPRP] != 1 {
		t.Fatalf("PRP: %v", v.Counts)
	}
	mem := h.mustAlloc(8192)
	cqe = h.adminCmd(createCQCmd(2, 8, mem.Addr+512))
	wantStatus(t, "CQ at a page offset", cqe.StatusField(), generic(spec.SCInvalidField))
	if v := h.c.Violations(); v.Counts[ViolationQueueSetup] != 1 {
		t.Fatalf("queue setup: %v", v.Counts)
	}
}

func TestStrictMakesViolationsFatal(t *testing.T) {
	cfg := testConfig()
	cfg.Strict = true
	h := newHost(t, cfg)
	h.regs.Write32(spec.RegCSTS, 0)
	h.waitCSTS(func(s spec.CSTS) bool { return s.CFS() }, "CFS after a violation under strict")
}

// Memory holding a live queue of an enabled controller must not be freed: the host
// disables the controller (or deletes the queue) first. Freeing right after CC.EN=0
// is allowed even before the device thread has dropped the queue.
func TestTeardownOrderChecked(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.ioQueue(1, 8, 8)
	if err := h.alloc.Free(q.sq); err == nil || !strings.Contains(err.Error(), "queue") {
		t.Fatalf("Free of a live SQ: %v", err)
	}
	v := h.c.Violations()
	if v.Counts[ViolationTeardown] != 1 || v.Total != 1 {
		t.Fatalf("violations %v, want one teardown violation", v.Counts)
	}
	h.regs.Write32(spec.RegCC, uint32(goodCC()&^spec.CCEnable))
	if err := h.alloc.Free(q.sq); err != nil {
		t.Fatalf("Free after CC.EN=0: %v", err)
	}
	if err := h.alloc.Free(h.admin.cq); err != nil {
		t.Fatalf("Free of the admin CQ after CC.EN=0: %v", err)
	}
	if v := h.c.Violations(); v.Total != 1 {
		t.Fatalf("violations %v after a proper disable", v.Counts)
	}
}

// After a normal shutdown completes the controller uses no host memory.
func TestFreeAfterShutdown(t *testing.T) {
	h := newHost(t, testConfig())
	cc := goodCC() | spec.CC(spec.CCShutdownNormal)<<14
	h.regs.Write32(spec.RegCC, uint32(cc))
	h.waitCSTS(func(s spec.CSTS) bool { return s.SHST() == spec.ShutdownStatusComplete }, "SHST complete")
	if err := h.alloc.Free(h.admin.sq); err != nil {
		t.Fatalf("Free of the admin SQ after shutdown: %v", err)
	}
	if v := h.c.Violations(); v.Total != 0 {
		t.Fatalf("violations %v", v.Counts)
	}
}

func TestStrictnessKeys(t *testing.T) {
	cfg, err := ParseOptions(map[string]string{"dstrd": "2", "mpsmin": "1", "regs32": "1", "strict": "true", "rtd3e": "8s", "shndelay": "2ms"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DSTRD != 2 || cfg.MPSMIN != 1 || !cfg.Regs32 || !cfg.Strict || cfg.RTD3E != 8_000_000 || cfg.ShutdownDelay != 2*time.Millisecond {
		t.Fatalf("parsed %+v", cfg)
	}
	for key, val := range map[string]string{"dstrd": "9", "mpsmin": "5", "regs32": "maybe", "rtd3e": "-1s", "shndelay": "1h"} {
		_, err := ParseOptions(map[string]string{key: val})
		if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), val) {
			t.Errorf("%s:%s: %v", key, val, err)
		}
	}
	c := newController(t, cfg)
	capReg := spec.CAP(c.Registers().Read64(spec.RegCAP))
	if capReg.DSTRD() != 2 || capReg.MPSMIN() != 1 || capReg.MPSMAX() < 1 {
		t.Fatalf("CAP %v", capReg)
	}
	if size := c.hostRegs.Size(); size < spec.CQHeadDoorbell(uint16(cfg.IOQueues), 2)+4 {
		t.Fatalf("BAR0 of %d bytes has no room for the last doorbell at stride 16", size)
	}
}
