package nvme

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Controller recovery over fabrics (Options.Recovery.Recover on a Fabric; see
// docs/recovery.md). A fabric controller fails when a connection is lost (reset, end of
// stream, a TermReq), keep alive fails, an admin command or an Abort times out, or a
// Property Get fails. It cannot be disabled through a lost connection: the association
// is replaced, the way SPDK's and Linux's hosts do it — every connection torn down, the
// admin queue connected again (Connect with CNTLID FFFFh: a new controller, maybe a new
// controller ID), and then the reset PCIe runs (recovery.go, resetController): enable
// through Property Set, wait for CSTS.RDY, identify again and check that it is the
// same subsystem, limits and namespaces. Each I/O queue pair then connects its own
// queue again: its next Poll starts the connect on a goroutine of its own, and a later
// Poll, on the owner's goroutine, installs the connection (pollRecoveringFabric).
//
// Unlike a PCIe reset, which runs on the worker that saw the failure (a register reset
// takes milliseconds), a fabric reset may wait for a target to come back: it runs on
// its own goroutine, with a growing, bounded delay between attempts, so no worker
// sleeps. While it runs, each queue pair's connection is "parked": what the worker
// submits is kept and sent on the new connection, so the workload goes on without
// errors for commands that never reached the lost association; the commands that were
// in flight on it complete with an error status and are counted.

// EventReconnect is a fabric queue pair that connected again after a reset.
const EventReconnect EventKind = "reconnect"

// Delays between reset attempts over fabrics: the first, doubled after each failed
// attempt up to the last. fabricRecoveryTick is how often the reset goroutine looks
// for a failure no queue pair reported (the asynchronous event poller's, say).
const (
	fabricReconnectDelay    = 250 * time.Millisecond
	maxFabricReconnectDelay = 2 * time.Second
	fabricRecoveryTick      = 250 * time.Millisecond
	// fabricHealthInterval is how often the reset goroutine reads CSTS (Property Get):
	// a controller that reports fatal status or is no longer ready is reset.
	fabricHealthInterval = time.Second
)

// errResetting completes the commands in flight on a connection a reset tears down.
var errResetting = errors.New("nvme: the controller is being reset: the connection and the commands in flight on it are gone")

// fabricRecovery is the controller's reset goroutine for fabrics.
type fabricRecovery struct {
	kick       chan struct{} // a failure was recorded: reset now
	stop, done chan struct{}
}

// startFabricRecovery starts the reset goroutine of a fabric controller that recovers.
func (c *Controller) startFabricRecovery() {
	if !c.opts.Recovery.Recover || c.IsDiscovery() {
		return
	}
	r := &c.fabricRec
	r.kick = make(chan struct{}, 1)
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go c.fabricRecoveryLoop()
}

// stopFabricRecovery stops the reset goroutine (Detach); a reset under way ends after
// its current attempt.
func (c *Controller) stopFabricRecovery() {
	r := &c.fabricRec
	if r.stop == nil {
		return
	}
	close(r.stop)
	<-r.done
	r.stop = nil
}

// fabricFailure records a failure seen on the connections of reset generation seen and
// asks for a reset. A failure of connections an earlier reset already replaced, one
// seen while a reset runs (the reset tears every connection down anyway) or after
// recovery gave up changes nothing.
func (c *Controller) fabricFailure(seen uint32, err error) {
	if !errors.Is(err, ErrFailed) {
		err = fmt.Errorf("%w: %w", ErrFailed, err)
	}
	c.rec.resetMu.Lock()
	defer c.rec.resetMu.Unlock()
	if c.rec.resetting.Load() || c.rec.gen.Load() != seen || c.rec.exhausted != nil {
		return
	}
	c.markFailed(err)
	select {
	case c.fabricRec.kick <- struct{}{}:
	default:
	}
}

func (c *Controller) fabricRecoveryLoop() {
	r := &c.fabricRec
	defer close(r.done)
	t := time.NewTicker(fabricRecoveryTick)
	defer t.Stop()
	lastHealth := time.Now()
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
		case <-t.C:
		}
		if c.Err() == nil && time.Since(lastHealth) >= fabricHealthInterval {
			lastHealth = time.Now()
			c.fabricHealthCheck()
		}
		if c.Err() != nil {
			c.resetFabric()
		}
	}
}

// fabricHealthCheck reads CSTS through Property Get, as a PCIe health check reads the
// register: fatal status, or a controller no longer ready, is a failure. A Property Get
// that fails is one too (fabricProperties marks the controller failed).
func (c *Controller) fabricHealthCheck() {
	gen := c.rec.gen.Load()
	if c.rec.resetting.Load() {
		return
	}
	csts := spec.CSTS(c.regs.Read32(spec.RegCSTS))
	switch {
	case csts == 0xFFFFFFFF:
		if err := c.Err(); err != nil {
			c.fabricFailure(gen, err) // asks for the reset without waiting for the tick
		}
	case csts.CFS():
		c.fabricFailure(gen, fmt.Errorf("%w: controller fatal status (%v)", ErrFailed, csts))
	case !csts.RDY():
		c.fabricFailure(gen, fmt.Errorf("%w: controller is no longer ready (%v)", ErrFailed, csts))
	}
}

// resetFabric resets a failed fabric controller: attempts until one works or
// Recovery.MaxResets are used up (each counts, as on PCIe), with a delay between them.
// Success and giving up both advance the reset generation, so every queue pair looks
// again at its next Poll: it reconnects, or finds the controller failed for good.
func (c *Controller) resetFabric() {
	c.rec.resetMu.Lock()
	cause := c.Err()
	if c.rec.exhausted != nil || cause == nil || c.rec.resetting.Load() {
		c.rec.resetMu.Unlock()
		return
	}
	c.rec.resetting.Store(true)
	c.rec.resetMu.Unlock()
	giveUp := func(err error) {
		c.rec.resetMu.Lock()
		defer c.rec.resetMu.Unlock()
		c.rec.exhausted = c.markFailedNow(err)
		c.rec.gen.Add(1)
		c.rec.resetting.Store(false)
	}
	max := c.opts.Recovery.MaxResets
	if max <= 0 {
		max = DefaultMaxResets
	}
	delay := fabricReconnectDelay
	for {
		c.rec.resetMu.Lock()
		if c.rec.resets >= max {
			n := c.rec.resets
			c.rec.resetMu.Unlock()
			giveUp(fmt.Errorf("%w: still failing after %d resets (the most allowed): %w", ErrFailed, n, cause))
			return
		}
		c.rec.resets++
		n := c.rec.resets
		c.rec.resetMu.Unlock()
		c.rec.note(Event{Kind: EventReset, Detail: fmt.Sprintf("reset %d of at most %d after: %v", n, max, cause)})
		start, oldID := time.Now(), c.fabricControllerID()
		err := c.resetController()
		if err == nil {
			c.rec.resetMu.Lock()
			c.rec.gen.Add(1)
			c.rec.resetting.Store(false)
			c.rec.resetMu.Unlock()
			c.rec.note(Event{Kind: EventReset, Detail: fmt.Sprintf("controller ready again after %v: a new association, controller ID %d (was %d)",
				time.Since(start).Round(time.Microsecond), c.fabricControllerID(), oldID)})
			return
		}
		if !errors.Is(err, ErrFailed) {
			err = fmt.Errorf("%w: %w", ErrFailed, err)
		}
		c.markFailed(err)
		cause = err
		if n >= max {
			c.rec.note(Event{Kind: EventReset, Detail: "reset failed: " + err.Error()})
			continue // gives up above
		}
		c.rec.note(Event{Kind: EventReset, Detail: fmt.Sprintf("reset failed: %v; next attempt in %v", err, delay)})
		select {
		case <-time.After(delay):
		case <-c.fabricRec.stop:
			giveUp(fmt.Errorf("%w: detached while resetting the controller after: %w", ErrFailed, cause))
			return
		}
		delay = min(2*delay, maxFabricReconnectDelay)
	}
}

// fabricControllerID is the controller ID of the current association, when the
// transport tells (NVMe/TCP does).
func (c *Controller) fabricControllerID() uint16 {
	if f, ok := c.fabric.(interface{ ControllerID() uint16 }); ok {
		return f.ControllerID()
	}
	return 0
}

// reconnectAdmin replaces the lost association's admin connection with a new one
// (resetController, under the admin lock): what was outstanding on the admin queue
// (Asynchronous Event Requests) completes with an error, the new controller (Connect
// with CNTLID FFFFh) is disabled if it is not, and the controller is no longer failed,
// so that Property Set can enable it.
func (c *Controller) reconnectAdmin() error {
	q := c.admin
	q.fail(errQueuesLost)
	q.retry.delayed = q.retry.delayed[:0]
	if q.fabric != nil {
		_ = q.fabric.Close()
		q.fabric = nil
	}
	if err := q.dialFabric(); err != nil {
		q.fabric = parkedQueue{} // no connection: admin commands wait for none
		return fmt.Errorf("%w: %w", ErrFailed, err)
	}
	q.failed = nil
	q.idlePolls, q.idleSince = 0, time.Time{}
	c.failMu.Lock()
	c.failed = nil
	c.failMu.Unlock()
	return c.disableFirst()
}

// recoveryGaveUp is the error of a controller failed for good after MaxResets.
func (c *Controller) recoveryGaveUp() error {
	c.rec.resetMu.Lock()
	defer c.rec.resetMu.Unlock()
	return c.rec.exhausted
}

// pollRecoveringFabric is Poll on a recovering fabric queue pair (pollRecovering). A
// lost connection, or a reset under way, parks the queue pair; after the reset it
// connects again — on a goroutine of its own, so this worker's other queue pairs are
// polled meanwhile — and, at the Poll that finds the connection made, sends what was
// submitted meanwhile. Only when recovery gives up does Poll return an error.
func (q *QPair) pollRecoveringFabric() (int, error) {
	c := q.ctrl
	if q.failed != nil && !q.fab.parked {
		return 0, q.failed
	}
	if c.rec.resetting.Load() {
		q.park(errResetting)
		q.dropConnect() // to the association the reset replaces
		return 0, nil
	}
	if gen := c.rec.gen.Load(); q.rcv.gen != gen || q.fab.connecting != nil {
		if err := q.reconnectFabric(gen); err != nil {
			return 0, err
		}
	}
	if q.fab.parked {
		return 0, nil // the reset it asked for has not begun, it is connecting, or its connection failed
	}
	n, err := q.pollGuarded()
	if err != nil {
		c.fabricFailure(q.rcv.gen, err)
		q.park(err)
	}
	return n, nil
}

// park ends the queue pair's connection after a failure (cause): the commands in flight
// on it complete with an error status (unless the failure already completed them), and
// the queue pair keeps accepting commands, which wait for the new connection.
func (q *QPair) park(cause error) {
	if q.fab.parked {
		return
	}
	q.fail(fmt.Errorf("nvme: queue pair %d: %w", q.id, cause))
	q.retry.delayed = q.retry.delayed[:0]
	if q.fabric != nil {
		_ = q.fabric.Close()
	}
	q.fabric = parkedQueue{}
	q.fab.parked = true
	q.failed = nil
	q.idlePolls, q.idleSince = 0, time.Time{}
}

// reconnectFabric brings the queue pair to the controller's reset generation gen: it
// starts connecting its queue to the new association, and at a later Poll, once that
// is done, installs the connection and sends the commands submitted while it was
// parked; or it fails for good when recovery gave up. A queue that cannot connect
// fails the new association too (another reset) and stays parked.
//
// The connect (TCP connect, ICReq/ICResp, Fabrics Connect: up to the transport's
// connect timeout when a target is slow) runs on a goroutine of its own, so that a
// worker driving several queue pairs goes on polling the others: their completions
// would otherwise wait, and their latencies grow by time the device never took. The
// goroutine touches nothing of q: it only hands over its result (fabricConnect).
func (q *QPair) reconnectFabric(gen uint32) error {
	c := q.ctrl
	if cn := q.fab.connecting; cn != nil {
		if cn.gen == gen {
			select {
			case <-cn.done:
			default:
				return nil // still connecting
			}
			q.fab.connecting = nil
			q.connected(cn)
			return nil
		}
		q.dropConnect() // to an association a later reset replaced
	}
	if err := c.recoveryGaveUp(); err != nil {
		q.fab.parked = false
		q.failed = nil
		q.fail(err) // what waited for the connection
		return err
	}
	q.park(errQueuesLost)
	q.rcv.gen = gen
	q.startConnect(gen)
	return nil
}

// connected takes the result of the connect cn, which is done: the queue pair installs
// the new connection and sends the commands it kept, or reports the failure.
func (q *QPair) connected(cn *fabricConnect) {
	c := q.ctrl
	if cn.err != nil {
		c.rec.note(Event{Kind: EventReconnect, QID: q.id, Detail: "connecting again failed: " + cn.err.Error()})
		c.fabricFailure(cn.gen, cn.err)
		return
	}
	q.fabric = cn.fq
	cn.fq = nil
	q.fab.parked = false
	q.active = 0
	waiting := 0
	for i := range q.reqs {
		r := &q.reqs[i]
		if !r.active {
			continue
		}
		r.placed = false
		r.tick, r.abortTick = q.tmo.tick, 0
		q.resendFabric(uint16(i))
		waiting++
	}
	c.rec.note(Event{Kind: EventReconnect, QID: q.id, Detail: fmt.Sprintf(
		"connected again (controller ID %d); %d commands submitted meanwhile sent", c.fabricControllerID(), waiting)})
}

// fabricConnect is a queue pair's connect after a reset, running on a goroutine of its
// own. The owner goroutine sets gen, cancel and done before starting it and reads fq
// and err only after done is closed; the connect goroutine writes fq and err, under mu,
// and nothing else. A connect given up on (abandoned) closes the connection it made,
// whichever of the two goroutines is last.
type fabricConnect struct {
	gen    uint32 // reset generation it connects for
	cancel context.CancelFunc
	done   chan struct{} // closed when the connect goroutine ends

	mu        sync.Mutex
	abandoned bool
	fq        FabricQueue
	err       error
}

// startConnect starts connecting the queue pair's queue for reset generation gen.
func (q *QPair) startConnect(gen uint32) {
	ctx, cancel := context.WithCancel(context.Background())
	cn := &fabricConnect{gen: gen, cancel: cancel, done: make(chan struct{})}
	q.fab.connecting = cn
	go cn.run(ctx, q.ctrl.fabric, q.fab.cfg)
}

// run connects (on its own goroutine) and hands over the result.
func (cn *fabricConnect) run(ctx context.Context, f Fabric, cfg FabricQueueConfig) {
	defer close(cn.done)
	var fq FabricQueue
	var err error
	if cf, ok := f.(FabricContextConnector); ok {
		fq, err = cf.ConnectQueueContext(ctx, cfg)
	} else {
		fq, err = f.ConnectQueue(cfg)
	}
	if err != nil {
		err = fmt.Errorf("nvme: connecting %s queue %d: %w", f.Name(), cfg.QID, err)
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.abandoned {
		if fq != nil {
			_ = fq.Close()
		}
		return
	}
	cn.fq, cn.err = fq, err
}

// abandon calls the connect off without waiting for it: a connection it made, or
// makes later, is closed.
func (cn *fabricConnect) abandon() {
	cn.mu.Lock()
	cn.abandoned = true // before the cancel, so that the cancelled connect hands over nothing
	fq := cn.fq
	cn.fq = nil
	cn.mu.Unlock()
	cn.cancel()
	if fq != nil {
		_ = fq.Close()
	}
}

// dropConnect abandons the queue pair's connect under way, if any, without waiting for
// it (a Poll returns at once).
func (q *QPair) dropConnect() {
	if cn := q.fab.connecting; cn != nil {
		q.fab.connecting = nil
		cn.abandon()
	}
}

// stopConnect abandons the queue pair's connect under way, if any, and waits for its
// goroutine to end (the queue pair is being freed: nothing may outlive it). Cancelling
// ends a transport's connect at once when it implements FabricContextConnector;
// otherwise the wait is bounded by the transport's own connect timeout.
func (q *QPair) stopConnect() {
	if cn := q.fab.connecting; cn != nil {
		q.fab.connecting = nil
		cn.abandon()
		<-cn.done
	}
}

// parkedQueue stands in for the connection of a parked queue pair: it accepts commands
// (they stay active in their request slots and are sent after the reconnect) and
// completes nothing.
type parkedQueue struct{}

func (parkedQueue) Submit(*spec.Command, []byte) error { return nil }
func (parkedQueue) Process(Completer) error            { return nil }
func (parkedQueue) Close() error                       { return nil }
