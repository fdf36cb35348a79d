package nvme

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// RecoveryOptions set how the driver deals with commands that do not complete and
// with a controller that fails (docs/recovery.md).
type RecoveryOptions struct {
	// IOTimeout is how long an I/O command may be outstanding before the queue pair
	// aborts it (Abort admin command); 0 means never. When the Abort fails, the
	// controller says it did not abort the command, or the aborted command still does
	// not complete within another IOTimeout, the controller is failed.
	IOTimeout time.Duration
	// Recover resets a failed controller (fatal status, registers reading all ones, a
	// command the Abort could not resolve) instead of ending the run: the controller is
	// disabled, re-enabled and re-identified, and every I/O queue pair re-creates its
	// queues from its owner's goroutine at its next Poll. Commands outstanding at the
	// failure complete with an error status.
	Recover bool
	// MaxResets bounds the resets of one controller; 0 means DefaultMaxResets. A
	// failure after that many resets fails the controller for good.
	MaxResets int
	// Retries is how many times a command that failed with a status whose Do Not Retry
	// bit is clear is sent again before its caller sees the error (retry.go); 0 means
	// never. SPDK's driver retries 4 times.
	Retries int
	// AsyncEvents keeps AERL+1 Asynchronous Event Requests outstanding and records the
	// events the controller reports (aer.go).
	AsyncEvents bool
}

// DefaultMaxResets is RecoveryOptions.MaxResets when it is 0.
const DefaultMaxResets = 3

// EventKind names what happened to a controller.
type EventKind string

// Event kinds.
const (
	EventTimeout    EventKind = "timeout"     // a command was outstanding past its timeout
	EventAbort      EventKind = "abort"       // an Abort command was sent, and what it did
	EventReset      EventKind = "reset"       // the controller was reset, or a reset failed
	EventRetry      EventKind = "retry"       // a failed command was sent again
	EventAsyncEvent EventKind = "async_event" // the controller reported an asynchronous event
	EventErrorLog   EventKind = "error_log"   // an Error Information log entry (a completion set More)
)

// Event is one recovery-related happening on a controller.
type Event struct {
	Time   time.Time
	Kind   EventKind
	QID    uint16 // queue the event concerns (0: admin or the whole controller)
	CID    uint16 // command identifier, when the event concerns one command
	Detail string
}

// maxEvents bounds the event log: a drive that times out every command must not make
// a long run's memory grow without bound. Events past it are only counted.
const maxEvents = 1000

// recoveryState is the controller's part of recovery: the event log, written from any
// goroutine (workers and the control path), and the reset state.
type recoveryState struct {
	mu      sync.Mutex
	events  []Event
	dropped int
	counts  map[EventKind]int

	// resetMu serialises resets; gen counts completed resets, so a queue pair that
	// knows an older generation knows its queues are gone; resetting is set while a
	// reset runs, so that other queue pairs leave the controller alone meanwhile.
	resetMu   sync.Mutex
	gen       atomic.Uint32
	resetting atomic.Bool
	retries   atomic.Uint64
	resets    int   // resets attempted, under resetMu
	exhausted error // set once MaxResets is used up, under resetMu
}

func (l *recoveryState) note(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[EventKind]int{}
	}
	l.counts[e.Kind]++
	if len(l.events) >= maxEvents {
		l.dropped++
		return
	}
	l.events = append(l.events, e)
}

// Events returns the controller's recovery events so far, oldest first, and how many
// were left out because the log was full.
func (c *Controller) Events() (events []Event, dropped int) {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	return append([]Event(nil), c.rec.events...), c.rec.dropped
}

// EventCount is how many events of kind happened, logged or not.
func (c *Controller) EventCount(kind EventKind) int {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	return c.rec.counts[kind]
}

// Resets is how many resets of the controller were attempted.
func (c *Controller) Resets() int {
	c.rec.resetMu.Lock()
	defer c.rec.resetMu.Unlock()
	return c.rec.resets
}

// Retries is how many failed commands were sent again (RecoveryOptions.Retries).
func (c *Controller) Retries() uint64 { return c.rec.retries.Load() }

// reconnectState is a queue pair's part of recovery; it belongs to the owner goroutine.
type reconnectState struct {
	on  bool   // the controller recovers: Poll goes through pollRecovering
	gen uint32 // controller reset generation the queues were created in
}

// initRecovery is called for every new queue pair.
func (q *QPair) initRecovery() {
	q.rcv.on = q.id != 0 && q.ctrl.opts.Recovery.Recover
	q.rcv.gen = q.ctrl.rec.gen.Load()
}

// pollRecovering is Poll on a recovering controller. A failure is not returned but
// handled: the controller is reset (by this goroutine, or it waits for the reset
// another one started), the outstanding commands complete with an error status, and
// the queue pair re-creates its queues on the reset controller. Only when recovery
// gives up does Poll return an error.
func (q *QPair) pollRecovering() (int, error) {
	c := q.ctrl
	if c.fabric != nil {
		return q.pollRecoveringFabric() // fabricrecovery.go
	}
	if c.rec.resetting.Load() {
		return 0, nil // another goroutine is resetting the controller: keep off it
	}
	if q.failed != nil || q.rcv.gen != c.rec.gen.Load() {
		if err := q.recoverQueue(q.failed); err != nil {
			return 0, err
		}
	}
	n, err := q.pollGuarded()
	if err != nil {
		if rerr := q.recoverQueue(err); rerr != nil {
			return n, rerr
		}
	}
	return n, nil
}

// recoverQueue brings the queue pair back after a failure (cause) or after another
// goroutine reset the controller (cause nil).
func (q *QPair) recoverQueue(cause error) error {
	c := q.ctrl
	if cause == nil {
		cause = c.Err()
	}
	if cause != nil {
		if err := c.resetAfter(q.rcv.gen, cause); err != nil {
			q.fail(err)
			q.failed = err
			return err
		}
	}
	return q.reconnect(cause)
}

// errQueuesLost completes the commands a reset took from the controller.
var errQueuesLost = errors.New("nvme: the controller was reset: its queues and their commands are gone")

// reconnect completes what is outstanding with an error status, clears the rings and
// creates the CQ and SQ again with the same identifier and memory.
func (q *QPair) reconnect(cause error) error {
	if cause == nil {
		cause = errQueuesLost
	}
	q.fail(fmt.Errorf("nvme: queue pair %d: %w", q.id, cause))
	gen := q.ctrl.rec.gen.Load()
	q.resetRing()
	if err := q.ctrl.createQueues(q); err != nil {
		q.failed = fmt.Errorf("nvme: re-creating queue pair %d after a reset: %w", q.id, err)
		return q.failed
	}
	q.failed = nil
	q.rcv.gen = gen
	return nil
}

// resetRing returns the queue pair's ring state to that of new queues. Its requests are
// all free (fail completed them).
func (q *QPair) resetRing() {
	q.sqTail, q.cqHead, q.sqHead, q.phase, q.active = 0, 0, 0, 1, 0
	q.lastRungTail, q.sinceRing = 0, 0
	q.clearShadow() // shadowdb.go
	q.swqHead, q.swqCount = 0, 0
	q.idlePolls, q.idleSince = 0, time.Time{}
	clear(q.cq) // phase tags 0: no entry looks posted
	for i := range q.reqs {
		q.reqs[i].placed, q.reqs[i].abortTick = false, 0
	}
	q.retry.delayed = q.retry.delayed[:0]
}

// createQueues creates q's I/O CQ and then its SQ on the controller.
func (c *Controller) createQueues(q *QPair) error {
	create := spec.Command{
		CDW10: uint32(q.id) | (q.size-1)<<16,
		CDW11: spec.QueuePhysicallyContiguous,
		PRP1:  q.cqMem.Addr,
	}
	create.SetOpcodeCID(uint8(spec.AdminCreateIOCQ), 0)
	if _, err := c.AdminCommand(&create, bus.Buffer{}); err != nil {
		return fmt.Errorf("creating I/O CQ %d: %w", q.id, err)
	}
	create = spec.Command{
		CDW10: uint32(q.id) | (q.size-1)<<16,
		CDW11: spec.QueuePhysicallyContiguous | uint32(q.id)<<16,
		PRP1:  q.sqMem.Addr,
	}
	create.SetOpcodeCID(uint8(spec.AdminCreateIOSQ), 0)
	if _, err := c.AdminCommand(&create, bus.Buffer{}); err != nil {
		return fmt.Errorf("creating I/O SQ %d: %w", q.id, err)
	}
	return nil
}

// resetAfter resets the controller after a failure seen by a queue pair whose queues
// belong to generation seen. When another goroutine already reset it since, there is
// nothing to do. Each attempt counts against MaxResets; once they are used up, the
// controller stays failed and every caller gets the same error.
func (c *Controller) resetAfter(seen uint32, cause error) error {
	c.rec.resetMu.Lock()
	defer c.rec.resetMu.Unlock()
	if c.rec.exhausted != nil {
		return c.rec.exhausted
	}
	if c.rec.gen.Load() != seen && c.Err() == nil {
		return nil // reset by another queue pair's goroutine meanwhile
	}
	max := c.opts.Recovery.MaxResets
	if max <= 0 {
		max = DefaultMaxResets
	}
	c.rec.resetting.Store(true)
	defer c.rec.resetting.Store(false)
	for c.rec.resets < max {
		c.rec.resets++
		c.rec.note(Event{Kind: EventReset, Detail: fmt.Sprintf("reset %d of at most %d after: %v", c.rec.resets, max, cause)})
		start := time.Now()
		err := c.resetController()
		if err == nil {
			c.rec.gen.Add(1)
			c.rec.note(Event{Kind: EventReset, Detail: fmt.Sprintf("controller ready again after %v", time.Since(start).Round(time.Microsecond))})
			return nil
		}
		c.rec.note(Event{Kind: EventReset, Detail: "reset failed: " + err.Error()})
		cause = err
	}
	c.rec.exhausted = c.markFailedNow(fmt.Errorf("%w: still failing after %d resets (the most allowed): %w", ErrFailed, c.rec.resets, cause))
	return c.rec.exhausted
}

// markFailedNow replaces the failure on record (a reset cleared the earlier one).
func (c *Controller) markFailedNow(err error) error {
	c.failMu.Lock()
	defer c.failMu.Unlock()
	c.failed = err
	return err
}

// resetController disables the controller, sets the admin queue up again, re-enables
// it and checks that it is the controller it was: same limits, at least as many I/O
// queues, the same namespaces and formats. It does not create I/O queues: each queue
// pair does that on its own goroutine (reconnect).
func (c *Controller) resetController() error {
	err := c.guard("resetting the controller", func() error {
		c.adminMu.Lock()
		defer c.adminMu.Unlock()
		defer c.holdingAdminLock()() // fabric.go: Property Get/Set under this lock
		if c.fabric != nil {
			// fabricrecovery.go: a lost association cannot be disabled; a new one, a
			// disabled controller, replaces it.
			if err := c.reconnectAdmin(); err != nil {
				return err
			}
		} else {
			cc := spec.CC(c.regs.Read32(spec.RegCC))
			if cc.EN() {
				c.regs.Write32(spec.RegCC, uint32(cc&^spec.CCEnable))
			}
			if err := c.waitReadyOff(); err != nil {
				return err
			}
			if c.cmb.on { // cmb.go: the reset may have cleared CMBMSC
				if err := c.programCMB(); err != nil {
					return err
				}
			}
			// The disabled controller dropped the admin queue and any command on it.
			c.admin.fail(errQueuesLost)
			c.admin.resetRing()
			c.admin.failed = nil
			n := uint16(c.admin.size)
			c.regs.Write32(spec.RegAQA, uint32(spec.MakeAQA(n, n)))
			bus.Write64(c.regs, spec.RegASQ, c.admin.sqMem.Addr)
			bus.Write64(c.regs, spec.RegACQ, c.admin.cqMem.Addr)
		}
		c.regs.Write32(spec.RegCC, uint32(spec.MakeCC(true, 0, c.cap.MPSMIN(), spec.CCShutdownNone, spec.SQESizeLog, spec.CQESizeLog)))
		if err := c.waitReady(true, "re-enabling the controller after a reset"); err != nil {
			return err
		}
		c.failMu.Lock()
		c.failed = nil
		c.failMu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	if err := c.reidentify(); err != nil {
		return err
	}
	if c.dbbuf.on { // shadowdb.go: a reset made the controller forget the buffers
		return c.sendDoorbellBufferConfig()
	}
	return nil
}

// reidentify checks the reset controller against what the run was set up with.
func (c *Controller) reidentify() error {
	var id spec.IdentifyController
	if err := c.identifyInto(spec.CNSController, 0, unsafe.Pointer(&id)); err != nil {
		return err
	}
	if got, was := id.SubsystemNQN(), c.ident.SubsystemNQN(); got != was || c.inCapsuleDataOf(&id) != c.inCapsuleData() {
		return fmt.Errorf("nvme: after the reset the controller is another one (subsystem %q, in-capsule data %d bytes; was %q, %d)",
			got, c.inCapsuleDataOf(&id), was, c.inCapsuleData())
	}
	if id.MDTS != c.ident.MDTS || id.SQES != c.ident.SQES || id.CQES != c.ident.CQES {
		return fmt.Errorf("nvme: after the reset the controller reports other limits (MDTS %d, SQES %#x, CQES %#x; was %d, %#x, %#x)",
			id.MDTS, id.SQES, id.CQES, c.ident.MDTS, c.ident.SQES, c.ident.CQES)
	}
	want := uint16(c.opts.IOQueues)
	cmd := spec.Command{CDW10: spec.FeatureNumberOfQueues, CDW11: spec.NumberOfQueues(want, want)}
	cmd.SetOpcodeCID(uint8(spec.AdminSetFeatures), 0)
	cpl, err := c.AdminCommand(&cmd, bus.Buffer{})
	if err != nil {
		return fmt.Errorf("nvme: setting the number of queues after a reset: %w", err)
	}
	nsq, ncq := spec.DecodeNumberOfQueues(cpl.DW0)
	if granted := min(int(nsq), int(ncq)); granted < c.ioQueues {
		return fmt.Errorf("nvme: after the reset the controller grants %d I/O queues, fewer than the %d the run uses", granted, c.ioQueues)
	}
	for _, ns := range c.namespaces {
		var nid spec.IdentifyNamespace
		if err := c.identifyInto(spec.CNSNamespace, ns.id, unsafe.Pointer(&nid)); err != nil {
			return err
		}
		if nid.NSZE != ns.ident.NSZE || nid.FLBAS != ns.ident.FLBAS || nid.LBAF != ns.ident.LBAF {
			return fmt.Errorf("nvme: namespace %d changed size or format across the reset", ns.id)
		}
	}
	return nil
}
