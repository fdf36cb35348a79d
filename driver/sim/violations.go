package sim

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Violation is a kind of host behaviour the NVMe specification does not allow, which
// the simulator detects and counts. Real controllers react to these with undefined
// behaviour (QEMU logs them as pci_nvme_ub_*), so a driver run must count none.
type Violation int

// Violation kinds.
const (
	// ViolationReadOnlyWrite is a write to a read-only register (CAP, VS, CSTS,
	// CMBLOC, CMBSZ).
	ViolationReadOnlyWrite Violation = iota
	// ViolationDoorbellRead is a read of a doorbell, which is write-only.
	ViolationDoorbellRead
	// ViolationWideAccess is a register access wider than 32 bits under Regs32.
	ViolationWideAccess
	// ViolationDoorbellValue is an SQ tail or CQ head beyond the queue, an SQ tail
	// that overruns entries not yet fetched, or a CQ head past entries not yet posted.
	ViolationDoorbellValue
	// ViolationPRP is a data pointer the PRP rules forbid (PRP Offset Invalid) or that
	// points outside host memory (Data Transfer Error).
	ViolationPRP
	// ViolationQueueSetup is a configuration the controller must refuse: CC.MPS outside
	// CAP.MPSMIN..MPSMAX, or a queue base not aligned to the memory page.
	ViolationQueueSetup
	// ViolationTeardown is freeing memory that holds a live queue of an enabled
	// controller (the host must disable the controller, or delete the queue, first).
	ViolationTeardown
	// ViolationCMB is a queue the controller memory buffer must not hold (cmb.go): in
	// the CMB's BAR while CMBMSC.CMSE is clear, running past the CMB's end, or a
	// completion queue when CMBSZ.CQS is clear.
	ViolationCMB
	numViolations
)

var violationNames = [numViolations]string{
	"write to a read-only register",
	"read of a write-only doorbell",
	"register access wider than 32 bits",
	"doorbell value outside the queue",
	"PRP not as the spec allows",
	"bad queue or page configuration",
	"DMA memory freed while the controller could use it",
	"controller memory buffer misuse",
}

func (v Violation) String() string {
	if v < 0 || v >= numViolations {
		return fmt.Sprintf("violation(%d)", int(v))
	}
	return violationNames[v]
}

// Violations counts the spec violations seen since New.
type Violations struct {
	Counts [numViolations]uint64 // by Violation kind
	Total  uint64
	Last   string // description of the most recent one, "" when none
}

// violationLog is the controller's record; the host's goroutines and the device thread
// both add to it.
type violationLog struct {
	counts [numViolations]atomic.Uint64
	total  atomic.Uint64
	mu     sync.Mutex
	last   string
}

// violation records one violation. Under Config.Strict it also makes the controller
// fatal (CSTS.CFS), so that a run against it fails instead of counting quietly.
func (c *Controller) violation(kind Violation, format string, args ...any) {
	msg := kind.String() + ": " + fmt.Sprintf(format, args...)
	// The message first: whoever sees the count go up sees its description.
	c.violations.mu.Lock()
	c.violations.last = msg
	c.violations.mu.Unlock()
	c.violations.counts[kind].Add(1)
	c.violations.total.Add(1)
	if c.cfg.Strict {
		c.faults.armed.Or(faultFatal)
	}
}

// Violations returns the spec violations counted so far; safe to call at any time.
func (c *Controller) Violations() Violations {
	var v Violations
	for i := range v.Counts {
		v.Counts[i] = c.violations.counts[i].Load()
	}
	v.Total = c.violations.total.Load()
	c.violations.mu.Lock()
	v.Last = c.violations.last
	c.violations.mu.Unlock()
	return v
}

// hostView checks the accesses the host makes through Registers (bus.AccessObserver).
// Doorbells rung through a pointer (bus.MMIO.Reg32) are checked by value on the device
// side instead.
type hostView struct{ c *Controller }

func (h hostView) ObserveAccess(off uint32, width int, write bool) {
	c := h.c
	if width != 4 && c.cfg.Regs32 {
		c.violation(ViolationWideAccess, "%d-byte access at %#x", width, off)
	}
	switch {
	case off >= spec.RegDoorbellBase:
		if !write {
			c.violation(ViolationDoorbellRead, "read at %#x", off)
		}
	case write && readOnlyRegister(off):
		c.violation(ViolationReadOnlyWrite, "write at %#x", off)
	case write && off&^7 == spec.RegCMBMSC && c.cmb.legacy:
		c.violation(ViolationCMB, "write to CMBMSC at %#x, which a controller without CAP.CMBS does not have", off)
	}
}

func readOnlyRegister(off uint32) bool {
	switch off &^ 3 {
	case spec.RegCAP, spec.RegCAP + 4, spec.RegVS, spec.RegCSTS, spec.RegCMBLOC, spec.RegCMBSZ:
		return true
	}
	return false
}
