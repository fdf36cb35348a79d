package nvme

import (
	"fmt"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Retries (Options.Recovery.Retries): a command that completes with an error whose
// status leaves Do Not Retry clear is submitted again, up to Retries times, before its
// caller sees the error. A Command Retry Delay in the status (CRD 1 to 3) delays the
// retry by the controller's CRDT1..3 (units of 100 ms); the queue pair never sleeps for
// it: the request waits in a list that Poll checks on its coarse clock (timeout.go).

// retryState is a queue pair's part of retrying; it belongs to the owner goroutine.
type retryState struct {
	max     int
	delayed []delayedRetry // waiting out a Command Retry Delay; capacity for every request
}

type delayedRetry struct {
	idx uint16
	due time.Time
}

func (q *QPair) initRetry() {
	if q.id == 0 || q.ctrl.opts.Recovery.Retries <= 0 {
		return
	}
	q.retry.max = q.ctrl.opts.Recovery.Retries
	q.retry.delayed = make([]delayedRetry, 0, len(q.reqs))
}

// retryOnError decides a failed completion of request idx: when its status allows a
// retry and the request has retries left, the command goes out again (now, or after
// its retry delay) and the caller is not told; retryOnError then returns true.
func (q *QPair) retryOnError(idx uint16, cpl *spec.Completion) bool {
	st := cpl.StatusField()
	r := &q.reqs[idx]
	if st.OK() || st.DNR() || int(r.retries) >= q.retry.max || isAbortStatus(st) {
		return false
	}
	r.retries++
	r.placed = false
	q.ctrl.rec.retries.Add(1)
	delay := time.Duration(0)
	if crd := st.CRD(); crd != 0 {
		delay = time.Duration(q.ctrl.ident.CRDT(int(crd))) * 100 * time.Millisecond
	}
	q.ctrl.rec.note(Event{Kind: EventRetry, QID: q.id, CID: r.cid,
		Detail: fmt.Sprintf("%s failed with %v; retry %d of %d after %v", q.commandName(r), st, r.retries, q.retry.max, delay)})
	if delay > 0 {
		q.retry.delayed = append(q.retry.delayed, delayedRetry{idx: idx, due: time.Now().Add(delay)})
		return true
	}
	q.resubmit(idx)
	return true
}

// releaseDelayed resubmits the delayed retries that are due at now.
func (q *QPair) releaseDelayed(now time.Time) {
	kept := q.retry.delayed[:0]
	for _, d := range q.retry.delayed {
		if now.Before(d.due) {
			kept = append(kept, d)
			continue
		}
		if q.reqs[d.idx].active {
			q.resubmit(d.idx)
		}
	}
	q.retry.delayed = kept
}

// resubmit sends request idx's command again under a new command identifier
// generation, into the SQ when it has room, else into the software queue.
func (q *QPair) resubmit(idx uint16) {
	r := &q.reqs[idx]
	r.cid = q.nextCID(r.cid, idx)
	r.cmd.SetCID(r.cid)
	r.tick, r.abortTick = q.tmo.tick, 0
	if q.fabric != nil {
		q.resendFabric(idx) // fabric.go
		return
	}
	if q.swqCount > 0 || !q.roomInSQ() {
		q.swq[(q.swqHead+q.swqCount)%len(q.swq)] = idx
		q.swqCount++
		return
	}
	q.place(r)
}

// isAbortStatus reports the statuses of commands the host itself had aborted (Abort,
// SQ deletion): sending those again would undo what the host wanted.
func isAbortStatus(st spec.Status) bool {
	return st.SCT() == spec.SCTGeneric && (st.SC() == spec.SCAbortRequested || st.SC() == spec.SCAbortedSQDeletion)
}
