package nvme

import (
	"fmt"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Per-command timeouts (Options.Recovery.IOTimeout).
//
// Reading the clock for every command would cost the I/O path what it measures, so a
// queue pair keeps a coarse clock instead: a tick counter it advances at most every
// timeoutTicks-th of the timeout, checked every timeoutPollMask+1 polls. A request
// records the tick at which it was submitted (a plain copy, no clock read); each tick
// scans the outstanding requests once. A command is declared timed out after
// timeoutTicks+1 ticks, that is between 1 and 1.25 times the timeout after it was
// submitted, as long as its owner keeps polling (workers always do).
const (
	timeoutTicks    = 4
	timeoutPollMask = 0xFF
	minTimeoutTick  = time.Millisecond
)

// timeoutState is a queue pair's part of timeout detection. It belongs to the queue
// pair's goroutine.
type timeoutState struct {
	limit    time.Duration // 0: no timeouts on this queue pair
	interval time.Duration // one tick
	tick     uint32        // ticks so far
	polls    uint32
	next     time.Time // when the next tick is due
}

// initTimeout arms timeout detection on an I/O queue pair when the controller's
// options ask for it. The admin queue has its own bound (Options.AdminTimeout).
func (q *QPair) initTimeout() {
	if q.id == 0 || q.ctrl.opts.Recovery.IOTimeout <= 0 {
		return
	}
	q.tmo.limit = q.ctrl.opts.Recovery.IOTimeout
	q.tmo.interval = max(q.tmo.limit/timeoutTicks, minTimeoutTick)
}

// timeoutPoll is called once per Poll when timeouts are armed or retries wait out a
// delay; every timeoutPollMask+1 calls it reads the clock, releases the delayed retries
// that are due and, once per tick, scans the outstanding commands.
func (q *QPair) timeoutPoll() error {
	q.tmo.polls++
	if q.tmo.polls&timeoutPollMask != 0 {
		return nil
	}
	now := time.Now()
	if len(q.retry.delayed) > 0 {
		q.releaseDelayed(now) // retry.go
	}
	if q.tmo.limit == 0 || now.Before(q.tmo.next) {
		return nil
	}
	q.tmo.next = now.Add(q.tmo.interval)
	q.tmo.tick++
	return q.scanTimeouts()
}

// scanTimeouts aborts every command placed in the SQ that has been outstanding for
// more than the timeout, and escalates when an abort does not work: the Abort failed,
// the controller said it did not abort the command, or the command still did not
// complete within another timeout after a successful Abort.
func (q *QPair) scanTimeouts() error {
	if q.rcv.on && (q.ctrl.rec.resetting.Load() || q.rcv.gen != q.ctrl.rec.gen.Load()) {
		return nil // a reset took the commands; reconnect completes them
	}
	for i := range q.reqs {
		r := &q.reqs[i]
		if !r.placed {
			continue // never reached the controller (software queue) or done
		}
		age := q.tmo.tick - r.tick
		if age <= timeoutTicks {
			continue
		}
		if r.abortTick != 0 {
			if q.tmo.tick-r.abortTick <= timeoutTicks {
				continue // aborted: give the controller a timeout to complete it
			}
			err := fmt.Errorf("%w: %s (CID %d) on queue %d did not complete within %v after the controller aborted it",
				ErrTimeout, q.commandName(r), r.cid, q.id, q.tmo.limit)
			return q.escalate(r, err)
		}
		// A dead controller explains the silence: that is a failure, not a timeout.
		if err := q.ctrl.checkAlive(); err != nil {
			return q.fail(err)
		}
		q.ctrl.rec.note(Event{Kind: EventTimeout, QID: q.id, CID: r.cid,
			Detail: fmt.Sprintf("%s outstanding longer than %v", q.commandName(r), q.tmo.limit)})
		aborted, err := q.ctrl.abortCommand(q.id, r.cid)
		if q.rcv.on && q.rcv.gen != q.ctrl.rec.gen.Load() {
			return nil // the controller was reset meanwhile: the Abort's answer means nothing
		}
		if err != nil {
			return q.escalate(r, fmt.Errorf("%w: %s (CID %d) on queue %d timed out after %v and the Abort failed: %w",
				ErrTimeout, q.commandName(r), r.cid, q.id, q.tmo.limit, err))
		}
		if !aborted {
			return q.escalate(r, fmt.Errorf("%w: %s (CID %d) on queue %d timed out after %v and the controller did not abort it",
				ErrTimeout, q.commandName(r), r.cid, q.id, q.tmo.limit))
		}
		r.abortTick = q.tmo.tick
		if r.abortTick == 0 {
			r.abortTick = 1 // 0 means "not aborted"; a wrapped tick is off by one, harmless
		}
	}
	return nil
}

func (q *QPair) commandName(r *request) string {
	return spec.IOOpcode(r.cmd.Opcode()).String()
}

// escalate handles a timeout the Abort could not resolve: the controller cannot be
// trusted with its queues any more, so it is failed (and, with Recovery.Recover, reset
// by the recovery path; see recovery.go). The queue pair's outstanding commands
// complete with an error status.
func (q *QPair) escalate(r *request, err error) error {
	q.ctrl.rec.note(Event{Kind: EventTimeout, QID: q.id, CID: r.cid, Detail: "giving up on the controller: " + err.Error()})
	return q.fail(q.ctrl.markFailed(fmt.Errorf("%w: %w", ErrFailed, err)))
}

// abortCommand sends Abort for command cid on submission queue sqid and reports whether
// the controller aborted it (Completion DW0 bit 0 clear). Admin commands are
// serialised, so at most one Abort is outstanding, within any controller's Abort
// Command Limit (ACL is 0's based: at least one is always allowed).
func (c *Controller) abortCommand(sqid, cid uint16) (bool, error) {
	cmd := spec.Command{CDW10: uint32(sqid) | uint32(cid)<<16}
	cmd.SetOpcodeCID(uint8(spec.AdminAbort), 0)
	cpl, err := c.AdminCommand(&cmd, bus.Buffer{})
	if err != nil {
		c.rec.note(Event{Kind: EventAbort, QID: sqid, CID: cid, Detail: "Abort failed: " + err.Error()})
		return false, err
	}
	aborted := cpl.DW0&1 == 0
	detail := "aborted"
	if !aborted {
		detail = "not aborted (the controller may still complete it)"
	}
	c.rec.note(Event{Kind: EventAbort, QID: sqid, CID: cid, Detail: detail})
	return aborted, nil
}
