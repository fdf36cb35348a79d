package sim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// FaultConfig arms fault injection from transport ID keys, so a command line can
// exercise error handling end to end (the Faults API does the same from Go).
type FaultConfig struct {
	NthIO      uint64        // fail the Nth I/O command, counting from 1 (failnth); 0 = off
	LBAFirst   uint64        // first LBA of a failing range (faillba)
	LBACount   uint64        // blocks in the failing range; 0 = off
	LBANSID    uint32        // namespace of the failing range (failnsid, default 1)
	Status     spec.Status   // status of failnth/faillba (failstatus, default unrecovered read error)
	Hang       bool          // failstatus:hang: failnth's command never completes (HangNthIO)
	Delay      time.Duration // extra latency on every I/O command (faildelay)
	FatalAfter time.Duration // set CSTS.CFS this long after the controller is created (fatalafter); 0 = off
	// RemoveAfter simulates surprise removal (Remove) this long after the controller is
	// created (removeafter); 0 = off.
	RemoveAfter time.Duration
	// AsyncEventAfter raises a SMART / Health temperature asynchronous event this long
	// after the controller is created (aerafter); 0 = off.
	AsyncEventAfter time.Duration
	// ErrorLog makes injected failures set More and fill the Error Information log
	// (failmore:1; Faults.SetErrorLog).
	ErrorLog bool
}

// failStatusNames are the failstatus values besides SCT/SC numbers.
var failStatusNames = map[string]spec.Status{
	"read-error":    spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCUnrecoveredReadError),
	"write-fault":   spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCWriteFault),
	"internal":      spec.MakeStatus(spec.SCTGeneric, spec.SCInternalError),
	"lba-range":     spec.MakeStatus(spec.SCTGeneric, spec.SCLBAOutOfRange),
	"invalid-field": spec.MakeStatus(spec.SCTGeneric, spec.SCInvalidField),
}

// setFault handles the fault keys; ok is false for keys that are not fault keys.
func (cfg *Config) setFault(key, val string) (ok bool, err error) {
	f := &cfg.Faults
	switch key {
	case "failnth":
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil || n == 0 {
			return true, badValue(key, val, "the number of the I/O command to fail, counting from 1")
		}
		f.NthIO = n
	case "faillba":
		lo, hi, found := strings.Cut(val, "-")
		first, err1 := strconv.ParseUint(lo, 10, 64)
		last := first
		var err2 error
		if found {
			last, err2 = strconv.ParseUint(hi, 10, 64)
		}
		if err1 != nil || err2 != nil || last < first {
			return true, badValue(key, val, "an LBA or an inclusive range FIRST-LAST such as 100-199")
		}
		// A namespace has at most 2^64-1 blocks, so LBA 2^64-1 cannot exist: a range
		// ending there means "to the end" and stops one short, which keeps the block
		// count and the exclusive end within 64 bits (0-18446744073709551615 would
		// otherwise count 2^64 blocks, wrap to 0 and turn the fault off).
		if last == math.MaxUint64 {
			if first == math.MaxUint64 {
				return true, badValue(key, val, "an LBA below 18446744073709551615 (no namespace has that many blocks), or a range FIRST-LAST such as 100-199")
			}
			last--
		}
		f.LBAFirst, f.LBACount = first, last-first+1
	case "failnsid":
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil || n == 0 {
			return true, badValue(key, val, "a namespace ID from 1")
		}
		f.LBANSID = uint32(n)
	case "failstatus":
		if val == "hang" {
			f.Hang = true
			break
		}
		if st, ok := failStatusNames[val]; ok {
			f.Status = st
			break
		}
		sct, sc, found := strings.Cut(val, "/")
		t, err1 := strconv.ParseUint(sct, 0, 3)
		c, err2 := strconv.ParseUint(sc, 0, 8)
		if !found || err1 != nil || err2 != nil || (t == 0 && c == 0) {
			return true, badValue(key, val, "read-error, write-fault, internal, lba-range, invalid-field, hang, or SCT/SC such as 2/0x81")
		}
		f.Status = spec.MakeStatus(spec.StatusCodeType(t), uint8(c))
	case "failmore":
		switch val {
		case "1", "true":
			f.ErrorLog = true
		case "0", "false":
			f.ErrorLog = false
		default:
			return true, badValue(key, val, "1 or 0")
		}
	case "faildelay", "fatalafter", "removeafter", "aerafter":
		d, err := time.ParseDuration(val)
		if err != nil || d < 0 || d > time.Minute {
			return true, badValue(key, val, "a duration from 0 to 1m such as 500us or 2s")
		}
		switch key {
		case "faildelay":
			f.Delay = d
		case "fatalafter":
			f.FatalAfter = d
		case "aerafter":
			f.AsyncEventAfter = d
		default:
			f.RemoveAfter = d
		}
	default:
		return false, nil
	}
	return true, nil
}

// armFaults applies cfg.Faults to a new controller.
func (c *Controller) armFaults() error {
	f := c.cfg.Faults
	st := f.Status
	if st == spec.StatusSuccess {
		st = failStatusNames["read-error"]
	}
	if f.NthIO > 0 && f.Hang {
		if err := c.faults.HangNthIO(f.NthIO); err != nil {
			return err
		}
	} else if f.NthIO > 0 {
		if err := c.faults.FailNthIO(f.NthIO, st); err != nil {
			return err
		}
	}
	if f.LBACount > 0 {
		nsid := f.LBANSID
		if nsid == 0 {
			nsid = 1
		}
		if err := c.faults.FailLBARange(nsid, f.LBAFirst, f.LBACount, st); err != nil {
			return err
		}
	}
	if f.Delay > 0 {
		if err := c.faults.SetCompletionDelay(f.Delay); err != nil {
			return err
		}
	}
	if f.FatalAfter > 0 {
		c.fatalTimer = time.AfterFunc(f.FatalAfter, c.faults.SetFatal)
	}
	c.faults.SetErrorLog(f.ErrorLog)
	if f.AsyncEventAfter > 0 {
		c.rec.aerTimer = time.AfterFunc(f.AsyncEventAfter, func() {
			c.RaiseAsyncEvent(AsyncEventSMART, AsyncInfoTemperature, spec.LogSMARTHealth)
		})
	}
	if f.RemoveAfter > 0 {
		c.removeTimer = time.AfterFunc(f.RemoveAfter, func() { _ = c.Remove() })
	}
	return nil
}

func (f FaultConfig) String() string {
	return fmt.Sprintf("failnth=%d faillba=%d+%d failnsid=%d failstatus=%v hang=%t faildelay=%v fatalafter=%v removeafter=%v",
		f.NthIO, f.LBAFirst, f.LBACount, f.LBANSID, f.Status, f.Hang, f.Delay, f.FatalAfter, f.RemoveAfter)
}

// StoresData reports whether the namespaces keep written data (store mem, or auto within
// memlimit): with store discard reads return nothing, so verify mode cannot check data.
func (cfg *Config) StoresData() bool { return cfg.storesData() }
