package nvme

import (
	"errors"
	"fmt"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Errors callers can test for with errors.Is.
var (
	// ErrQueueFull means every request slot of a queue pair is in use (software queue
	// included); the caller should poll and try again.
	ErrQueueFull = errors.New("nvme: queue pair has no free request slot")
	// ErrFailed means the controller failed (fatal status, stopped responding or its
	// registers became unreachable); nothing more can be done with it.
	ErrFailed = errors.New("nvme: controller failed")
	// ErrTimeout means the controller did not answer in time.
	ErrTimeout = errors.New("nvme: timed out")
)

// StatusError is a command that completed with a non-success status.
type StatusError struct {
	Status spec.Status
	Admin  bool
	Opcode uint8
	NSID   uint32
	SLBA   uint64 // for NVM read/write-like commands
	NLB    uint32 // 1-based; 0 when not an LBA command
}

func (e *StatusError) Error() string {
	if e.Admin {
		return fmt.Sprintf("nvme: %s failed: %s", spec.AdminOpcode(e.Opcode), e.Status)
	}
	if e.NLB > 0 {
		return fmt.Sprintf("nvme: %s of %d blocks at LBA %d (NSID %d) failed: %s",
			spec.IOOpcode(e.Opcode), e.NLB, e.SLBA, e.NSID, e.Status)
	}
	return fmt.Sprintf("nvme: %s (NSID %d) failed: %s", spec.IOOpcode(e.Opcode), e.NSID, e.Status)
}

// isLBACommand reports whether an NVM opcode carries SLBA/NLB in CDW10-12.
func isLBACommand(opc uint8) bool {
	switch spec.IOOpcode(opc) {
	case spec.IORead, spec.IOWrite, spec.IOCompare, spec.IOWriteZeroes, spec.IOWriteUncorrectable, spec.IOVerify:
		return true
	}
	return false
}

// StatusErrorFor builds the error for a failed completion of cmd.
func StatusErrorFor(admin bool, cmd *spec.Command, st spec.Status) *StatusError {
	e := &StatusError{Status: st, Admin: admin, Opcode: cmd.Opcode(), NSID: cmd.NSID}
	if !admin && isLBACommand(cmd.Opcode()) {
		e.SLBA, e.NLB = cmd.SLBA(), cmd.NLB()
	}
	return e
}
