package sim

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Fault bits in Faults.armed: the device thread checks one atomic word per command and
// looks further only when a bit is set.
const (
	faultNth uint32 = 1 << iota
	faultLBA
	faultDelay
	faultNeverReady
	faultFatal
	faultFreeze
)

// Faults injects failures into a running controller. Every method is safe to call from
// any goroutine at any time; faults that are not armed cost the device one atomic load
// per command.
type Faults struct {
	armed atomic.Uint32

	nthTarget atomic.Uint64 // fail the I/O command with this count (1-based)
	nthSeen   atomic.Uint64 // I/O commands counted since FailNthIO
	nthStatus atomic.Uint32

	lba atomic.Pointer[lbaFault]

	delay atomic.Int64 // nanoseconds added to every I/O completion

	errorLog atomic.Bool // injected failures are logged with More set (recovery.go)
	inline   bool        // set by New: an inline controller has no clock to complete late
}

type lbaFault struct {
	nsid       uint32 // 0 = every namespace
	first, end uint64 // [first, end) in logical blocks
	status     spec.Status
}

// FailNthIO makes the nth I/O command fetched from now on (counting from 1) complete
// with status st instead of executing. It fires once.
func (f *Faults) FailNthIO(n uint64, st spec.Status) error {
	if n == 0 {
		return fmt.Errorf("sim: FailNthIO: n is 0 (want 1 or more; commands count from 1)")
	}
	if st.OK() {
		return fmt.Errorf("sim: FailNthIO: status %v is success (want an error status)", st)
	}
	f.armed.And(^faultNth)
	f.nthTarget.Store(n)
	f.nthSeen.Store(0)
	f.nthStatus.Store(uint32(st))
	f.armed.Or(faultNth)
	return nil
}

// FailLBARange makes every I/O command on namespace nsid (0 = any) whose blocks overlap
// [slba, slba+nlb) complete with status st, for example
// spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCUnrecoveredReadError). It stays
// armed until ClearLBARange or Clear.
func (f *Faults) FailLBARange(nsid uint32, slba, nlb uint64, st spec.Status) error {
	if nlb == 0 || slba+nlb < slba {
		return fmt.Errorf("sim: FailLBARange: range of %d blocks at LBA %d is empty or wraps (want 1 or more blocks)", nlb, slba)
	}
	if st.OK() {
		return fmt.Errorf("sim: FailLBARange: status %v is success (want an error status)", st)
	}
	f.lba.Store(&lbaFault{nsid: nsid, first: slba, end: slba + nlb, status: st})
	f.armed.Or(faultLBA)
	return nil
}

// ClearLBARange disarms FailLBARange.
func (f *Faults) ClearLBARange() { f.armed.And(^faultLBA) }

// SetCompletionDelay adds d to the completion time of every I/O command (0 disarms).
func (f *Faults) SetCompletionDelay(d time.Duration) error {
	if d < 0 || d > time.Minute {
		return fmt.Errorf("sim: SetCompletionDelay: %v is not accepted (want 0 to 1m)", d)
	}
	if f.inline && d != 0 {
		return fmt.Errorf("sim: SetCompletionDelay: %v is not accepted in inline mode (completions are posted during the doorbell write; use the threaded mode)", d)
	}
	f.delay.Store(int64(d))
	if d == 0 {
		f.armed.And(^faultDelay)
	} else {
		f.armed.Or(faultDelay)
	}
	return nil
}

// SetNeverReady makes the controller leave CSTS.RDY at 0 after CC.EN is set, as a dead
// drive does, so the host's CAP.TO timeout path can be tested.
func (f *Faults) SetNeverReady(on bool) {
	if on {
		f.armed.Or(faultNeverReady)
	} else {
		f.armed.And(^faultNeverReady)
	}
}

// SetFatal raises CSTS.CFS at once and stops all command processing until the host
// resets the controller (CC.EN 1 -> 0), which clears it.
func (f *Faults) SetFatal() { f.armed.Or(faultFatal) }

// SetFrozen stops (true) or resumes (false) all queue processing without touching any
// register: the controller simply stops responding.
func (f *Faults) SetFrozen(on bool) {
	if on {
		f.armed.Or(faultFreeze)
	} else {
		f.armed.And(^faultFreeze)
	}
}

// Clear disarms every fault.
func (f *Faults) Clear() {
	f.armed.Store(0)
	f.delay.Store(0)
	f.errorLog.Store(false)
}

// ioFault reports the status an armed fault forces on an I/O command, with ok false when
// none applies. hasRange says whether slba/nlb are an LBA range (Read, Write, Write
// Zeroes) that FailLBARange applies to.
func (f *Faults) ioFault(armed uint32, nsid uint32, slba, nlb uint64, hasRange bool) (spec.Status, bool) {
	if armed&faultNth != 0 {
		if f.nthSeen.Add(1) == f.nthTarget.Load() {
			f.armed.And(^faultNth)
			return spec.Status(f.nthStatus.Load()), true
		}
	}
	if armed&faultLBA != 0 && hasRange {
		if lf := f.lba.Load(); lf != nil && (lf.nsid == 0 || lf.nsid == nsid) && slba < lf.end && slba+nlb > lf.first {
			return lf.status, true
		}
	}
	return 0, false
}
