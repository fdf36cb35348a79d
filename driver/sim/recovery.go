package sim

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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

	aers            []heldCommand // Asynchronous Event Requests held, oldest first
	eventsMu        sync.Mutex
	events          []uint32 // raised events waiting for an AER (completion DW0)
	criticalWarning atomic.Uint32
	eventsPosted    atomic.Uint64
	aerTimer        *time.Timer

	// Error Information log of injected failures (Faults.SetErrorLog), newest last;
	// belongs to the device thread, counters readable from anywhere.
	errorLog    []spec.ErrorLogEntry
	errorCount  atomic.Uint64
	mediaErrors atomic.Uint64
	logInjected atomic.Bool
}

// errorLogDepth is how many Error Information log entries the simulator keeps.
const errorLogDepth = 64

// SetErrorLog makes injected failures (FailNthIO, FailLBARange) set the More bit of
// their status and add an entry to the Error Information log, which also counts them in
// the SMART log's error log entries (and media errors, for media status codes).
func (f *Faults) SetErrorLog(on bool) { f.errorLog.Store(on) }

// logInjected records an injected failure of cmd on sq in the error log when
// SetErrorLog is on, and returns the status to post.
func (c *Controller) logInjected(sq *submissionQueue, cmd *spec.Command, st spec.Status) spec.Status {
	if !c.faults.errorLog.Load() {
		return st
	}
	n := c.rec.errorCount.Add(1)
	if st.SCT() == spec.SCTMediaDataIntegrity {
		c.rec.mediaErrors.Add(1)
	}
	st = st.WithMore()
	e := spec.ErrorLogEntry{ErrorCount: n, SQID: sq.id, CID: cmd.CID(), Status: uint16(st) << 1, NSID: cmd.NSID, LBA: cmd.SLBA(),
		ParamErrorLoc: 0xFFFF}
	if len(c.rec.errorLog) == errorLogDepth {
		copy(c.rec.errorLog, c.rec.errorLog[1:])
		c.rec.errorLog = c.rec.errorLog[:errorLogDepth-1]
	}
	c.rec.errorLog = append(c.rec.errorLog, e)
	return st
}

// fillErrorLog writes the error log, newest entry first, as the log page returns it.
func (c *Controller) fillErrorLog(dst []byte) {
	for i := 0; i < len(c.rec.errorLog) && (i+1)*spec.ErrorLogEntrySize <= len(dst); i++ {
		e := c.rec.errorLog[len(c.rec.errorLog)-1-i]
		copy(dst[i*spec.ErrorLogEntrySize:], unsafe.Slice((*byte)(unsafe.Pointer(&e)), spec.ErrorLogEntrySize))
	}
}

// faultAsyncEvent tells the device thread that RaiseAsyncEvent queued an event. It
// shares Faults.armed with faults.go's bits, far above them.
const faultAsyncEvent uint32 = 1 << 16

// Asynchronous event types (Completion DW0 bits 2:0) and the information the simulator
// raises (NVMe Base 2.0, figures 146-150).
const (
	AsyncEventError        = 0
	AsyncEventSMART        = 1
	AsyncEventNotice       = 2
	AsyncInfoTemperature   = 0x01 // SMART / Health: temperature threshold
	AsyncInfoNSChanged     = 0x00 // Notice: namespace attribute changed
	LogChangedNamespaces   = 0x04
	criticalWarningTempBit = 1 << 1
)

// RecoveryStats counts the recovery-related events since New.
type RecoveryStats struct {
	Hung        uint64 // I/O commands the hang fault swallowed
	Aborts      uint64 // Abort commands executed
	Aborted     uint64 // commands an Abort completed (status Command Abort Requested)
	AsyncEvents uint64 // Asynchronous Event Requests completed with an event
}

// RecoveryStats returns the recovery counters; safe to call at any time.
func (c *Controller) RecoveryStats() RecoveryStats {
	return RecoveryStats{Hung: c.rec.hung.Load(), Aborts: c.rec.aborts.Load(), Aborted: c.rec.abortsDone.Load(),
		AsyncEvents: c.rec.eventsPosted.Load()}
}

// RaiseAsyncEvent queues an asynchronous event: the oldest outstanding Asynchronous
// Event Request completes with DW0 = typ | info<<8 | logPage<<16, at once if one is
// held, else when the host sends one. A SMART / Health temperature event also sets the
// temperature bit of the SMART log's critical warning. Safe from any goroutine.
func (c *Controller) RaiseAsyncEvent(typ, info, logPage uint8) {
	if typ == AsyncEventSMART && info == AsyncInfoTemperature {
		c.rec.criticalWarning.Or(criticalWarningTempBit)
	}
	c.rec.eventsMu.Lock()
	c.rec.events = append(c.rec.events, uint32(typ&7)|uint32(info)<<8|uint32(logPage)<<16)
	c.rec.eventsMu.Unlock()
	c.faults.armed.Or(faultAsyncEvent)
}

// holdAER keeps an Asynchronous Event Request until an event completes it.
func (c *Controller) holdAER(sq *submissionQueue, cmd *spec.Command) spec.Status {
	if len(c.rec.aers) >= asyncEventMax {
		return specific(spec.SCAsyncEventLimitExceeded)
	}
	c.rec.aers = append(c.rec.aers, heldCommand{sq: sq, cid: cmd.CID()})
	c.faults.armed.Or(faultAsyncEvent) // an event may be waiting for it
	return spec.StatusSuccess
}

// deliverAsyncEvents completes held AERs with queued events; the device thread calls it
// when faultAsyncEvent is set.
func (c *Controller) deliverAsyncEvents() int {
	c.faults.armed.And(^faultAsyncEvent)
	c.rec.eventsMu.Lock()
	defer c.rec.eventsMu.Unlock()
	n := 0
	for len(c.rec.events) > 0 && len(c.rec.aers) > 0 {
		h := c.rec.aers[0]
		c.rec.aers = c.rec.aers[1:]
		c.post(h.sq, h.cid, spec.StatusSuccess, c.rec.events[0])
		c.rec.events = c.rec.events[1:]
		c.rec.eventsPosted.Add(1)
		n++
	}
	return n
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
	if sq == nil && !post {
		c.rec.aers = c.rec.aers[:0] // a reset drops the held AERs with the admin queue
	}
}
