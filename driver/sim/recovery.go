package sim

import (
	"fmt"
	"sync/atomic"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// statusHang is what ioFault returns for a command the fault swallows. A completion
// status field has 15 bits, so no real status equals it.
const statusHang spec.Status = 0xFFFF

// commandRetryDelays are Identify CRDT1..3 in units of 100 ms, for injected statuses
// that carry a Command Retry Delay (spec.Status.WithCRD).
var commandRetryDelays = [3]uint16{1, 5, 10}

// heldCommand is an I/O command a hang fault swallowed: fetched, never completed until
// the host aborts it, deletes its SQ or resets the controller.
type heldCommand struct {
	sq  *submissionQueue
	cid uint16
}

// recoveryState is the controller's part for recovery features: commands held by the
// hang fault and counters. held belongs to the device thread.
type recoveryState struct {
	held                     []heldCommand
	hung, aborts, abortsDone atomic.Uint64
}

// RecoveryStats counts the recovery-related events since New.
type RecoveryStats struct {
	Hung    uint64 // I/O commands the hang fault swallowed
	Aborts  uint64 // Abort commands executed
	Aborted uint64 // commands an Abort completed (status Command Abort Requested)
}

// RecoveryStats returns the recovery counters; safe to call at any time.
func (c *Controller) RecoveryStats() RecoveryStats {
	return RecoveryStats{Hung: c.rec.hung.Load(), Aborts: c.rec.aborts.Load(), Aborted: c.rec.abortsDone.Load()}
}

// HangNthIO makes the nth I/O command fetched from now on (counting from 1) never
// complete: the controller holds it, as a drive that lost a command does, until the
// host aborts it (Abort), deletes its submission queue or resets the controller. It
// fires once.
func (f *Faults) HangNthIO(n uint64) error {
	if n == 0 {
		return fmt.Errorf("sim: HangNthIO: n is 0 (want 1 or more; commands count from 1)")
	}
	f.armed.And(^faultNth)
	f.nthTarget.Store(n)
	f.nthSeen.Store(0)
	f.nthStatus.Store(uint32(statusHang))
	f.armed.Or(faultNth)
	return nil
}

// hold keeps a swallowed command; its CQ slot stays reserved until it is posted.
func (c *Controller) hold(sq *submissionQueue, cmd *spec.Command) {
	c.rec.held = append(c.rec.held, heldCommand{sq: sq, cid: cmd.CID()})
	c.rec.hung.Add(1)
}

// abort executes the Abort admin command (CDW10: SQID 15:0, CID 31:16). A held command
// completes with "Command Abort Requested" and the Abort answers DW0 bit 0 = 0; any
// other command is not aborted (bit 0 = 1), which the spec allows: the host then has to
// wait for it or reset the controller.
func (c *Controller) abort(cmd *spec.Command) uint32 {
	sqid, cid := uint16(cmd.CDW10), uint16(cmd.CDW10>>16)
	c.rec.aborts.Add(1)
	for i, h := range c.rec.held {
		if h.sq.id == sqid && h.cid == cid {
			c.rec.held = append(c.rec.held[:i], c.rec.held[i+1:]...)
			c.post(h.sq, h.cid, generic(spec.SCAbortRequested), 0)
			c.rec.abortsDone.Add(1)
			return 0
		}
	}
	return 1
}

// releaseHeld completes the held commands of sq (all when sq is nil) with "aborted due
// to SQ deletion" when post is true, or forgets them (a reset drops every queue).
func (c *Controller) releaseHeld(sq *submissionQueue, post bool) {
	kept := c.rec.held[:0]
	for _, h := range c.rec.held {
		if sq != nil && h.sq != sq {
			kept = append(kept, h)
			continue
		}
		if post {
			c.post(h.sq, h.cid, generic(spec.SCAbortedSQDeletion), 0)
		}
	}
	clear(c.rec.held[len(kept):])
	c.rec.held = kept
}
