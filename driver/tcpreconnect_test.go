package driver_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/nvmetcp"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/serve"
	"github.com/nvmeperf/nvmeperf/workload"
)

// A queue pair that connects again after a fabric reset does so off its worker's
// goroutine (driver/nvme/fabricrecovery.go): these tests hold its new connection at
// the target and check what the worker does meanwhile.

// gateListener is the listener of a target that can hold new connections: while it
// is held, connections are accepted from the kernel (so a host's TCP connect succeeds
// and its ICReq waits for an answer) but not handed to the server.
type gateListener struct {
	net.Listener
	mu      sync.Mutex
	cond    *sync.Cond
	allow   int // connections still let through; < 0: open
	pending []net.Conn
	handed  []*gateConn
	err     error // the listener's Accept failed (closed)
}

func newGateListener(ln net.Listener) *gateListener {
	g := &gateListener{Listener: ln, allow: -1}
	g.cond = sync.NewCond(&g.mu)
	go g.acceptLoop()
	return g
}

func (g *gateListener) acceptLoop() {
	for {
		nc, err := g.Listener.Accept()
		g.mu.Lock()
		if err != nil {
			g.err = err
			g.cond.Broadcast()
			g.mu.Unlock()
			return
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true) // the server cannot see the TCPConn behind a gateConn
		}
		g.pending = append(g.pending, nc)
		g.cond.Broadcast()
		g.mu.Unlock()
	}
}

// Accept hands the oldest pending connection to the server when the gate lets it.
func (g *gateListener) Accept() (net.Conn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.err == nil && (len(g.pending) == 0 || g.allow == 0) {
		g.cond.Wait()
	}
	if g.err != nil {
		for _, nc := range g.pending {
			nc.Close()
		}
		g.pending = nil
		return nil, g.err
	}
	nc := g.pending[0]
	g.pending = g.pending[1:]
	if g.allow > 0 {
		g.allow--
	}
	c := &gateConn{Conn: nc, hostClosed: make(chan struct{})}
	g.handed = append(g.handed, c)
	return c, nil
}

// hold lets n more connections through, then holds the rest.
func (g *gateListener) hold(n int) {
	g.mu.Lock()
	g.allow = n
	g.mu.Unlock()
}

// open lets every connection through.
func (g *gateListener) open() {
	g.mu.Lock()
	g.allow = -1
	g.cond.Broadcast()
	g.mu.Unlock()
}

// isOpen reports whether the gate lets every connection through.
func (g *gateListener) isOpen() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.allow < 0
}

// held is how many connections the gate holds: those waiting when it lets none
// through (a connection let through may wait a moment for the server's Accept).
func (g *gateListener) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.allow != 0 {
		return 0
	}
	return len(g.pending)
}

// take removes the oldest held connection from the gate: the server never sees it.
func (g *gateListener) take() net.Conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	nc := g.pending[0]
	g.pending = g.pending[1:]
	return nc
}

// lastHanded is the connection the server got last.
func (g *gateListener) lastHanded() *gateConn {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.handed[len(g.handed)-1]
}

// gateConn is a connection the server got through the gate; it notes when the host
// closes it.
type gateConn struct {
	net.Conn
	once       sync.Once
	hostClosed chan struct{}
}

func (c *gateConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		c.once.Do(func() { close(c.hostClosed) })
	}
	return n, err
}

// watchClose reads nc (a connection nobody serves) until the host closes it; the
// channel gets nil then, or the error that ended the wait (60 s at most).
func watchClose(nc net.Conn) <-chan error {
	ch := make(chan error, 1)
	go func() {
		defer nc.Close()
		_ = nc.SetReadDeadline(time.Now().Add(60 * time.Second))
		_, err := io.Copy(io.Discard, nc)
		if errors.Is(err, syscall.ECONNRESET) {
			err = nil
		}
		ch <- err
	}()
	return ch
}

// startGatedTarget serves a RAM namespace of size bytes behind a gateListener.
func startGatedTarget(t *testing.T, size int) (*serve.Server, *gateListener, string) {
	t.Helper()
	s, err := serve.New(serve.Config{Namespaces: []target.Target{&memTarget{data: make([]byte, size)}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := newGateListener(ln)
	done := make(chan error, 1)
	go func() { done <- s.Serve(g) }()
	t.Cleanup(func() {
		g.open()
		s.Close()
		<-done
	})
	return s, g, ln.Addr().String()
}

// reconnectTimeout is the hosts' connect timeout in these tests: far longer than any
// wait in them, so that only the code under test ends a connect.
const reconnectTimeout = 5 * time.Minute

// openRecoveringTCP attaches to the controller at addr with --recover (maxResets) and
// the long connect timeout, and returns its namespace as a target.
func openRecoveringTCP(t *testing.T, addr string, maxResets int) (target.Target, *nvme.Controller) {
	t.Helper()
	hostNQN, hostID := nvmetcp.DefaultHostNQN()
	host := nvmetcp.NewHost(nvmetcp.HostConfig{Addr: addr, SubNQN: serve.DefaultNQN, HostNQN: hostNQN, HostID: hostID,
		ConnectTimeout: reconnectTimeout})
	c, err := nvme.AttachFabric(host, nvme.Options{Recovery: nvme.RecoveryOptions{Recover: true, MaxResets: maxResets}})
	if err != nil {
		t.Fatal(err)
	}
	tg := nvme.NewTarget(c.Namespaces()[0], target.Info{Name: addr, Transport: "TCP"}, c.Detach)
	t.Cleanup(func() { tg.Close() })
	return tg, c
}

// lane is one queue pair the test's worker drives: 8 reads in flight, each resubmitted
// as soon as it completes.
type lane struct {
	q          target.Queue
	w          *waiter
	ok, failed int
	closed     bool
}

func openLane(t *testing.T, tg target.Target) *lane {
	t.Helper()
	l := &lane{w: &waiter{}}
	q, err := tg.OpenQueue(target.QueueConfig{Depth: 8, IOSize: 4096, Handler: l.w})
	if err != nil {
		t.Fatal(err)
	}
	l.q = q
	t.Cleanup(func() { l.close() })
	for j := range 8 {
		if err := q.Submit(&target.Request{Op: target.OpRead, Offset: uint64(j) * 4096, Length: 4096, Buf: j}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// poll polls the queue once, counts what completed and, unless the poll failed,
// submits it again.
func (l *lane) poll() error {
	_, err := l.q.Poll()
	for _, r := range l.w.done {
		if r.Err != nil {
			l.failed++
		} else {
			l.ok++
		}
		if err == nil {
			if serr := l.q.Submit(r); serr != nil {
				err = serr
			}
		}
	}
	l.w.done = l.w.done[:0]
	return err
}

func (l *lane) close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	return l.q.Close()
}

// drive is the worker: it polls every lane in turn until done says so; a poll error or
// 60 s without done fails the test.
func drive(t *testing.T, what string, lanes []*lane, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after 60 s", what)
		}
		for i, l := range lanes {
			if err := l.poll(); err != nil {
				t.Fatalf("%s: queue %d: %v", what, i, err)
			}
		}
	}
}

// waitNoConnects waits (60 s at most) until no background connect of a queue pair is
// running.
func waitNoConnects(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := runtime.Stack(buf, true)
		if !strings.Contains(string(buf[:n]), "(*fabricConnect).run") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a queue pair's connect goroutine is still running after 60 s:\n%s", buf[:n])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dropAndHold lets the admin queue's new connection through the gate, drops the
// target's connections and drives the worker until the I/O queue pair's new
// connection waits at the gate.
func dropAndHold(t *testing.T, s *serve.Server, g *gateListener, c *nvme.Controller, lanes []*lane) {
	t.Helper()
	g.hold(1) // after a drop the reset connects the admin queue first
	if n := s.DropConnections(); n != 2 {
		t.Fatalf("the target dropped %d connections, want the admin queue's and one I/O queue's", n)
	}
	drive(t, "waiting for the I/O queue to connect again", lanes, func() bool { return g.held() == 1 })
	if events, _ := c.Events(); c.Resets() != 1 || len(events) != 2 || !strings.Contains(events[1].Detail, "ready again") {
		t.Fatalf("%d resets, events %+v; want one that worked", c.Resets(), events)
	}
}

// TestTCPReconnectDoesNotStallTheWorker: one worker drives queue pairs on two
// controllers. A's target drops its connections and then holds A's new I/O connection
// unanswered; meanwhile the worker goes on completing B's reads (a reconnect that
// blocked the worker would stop them, and inflate B's latencies by the wait). Once the
// target answers, A connects again and the reads it kept complete.
func TestTCPReconnectDoesNotStallTheWorker(t *testing.T) {
	sA, gate, addrA := startGatedTarget(t, 4<<20)
	_, addrB := startTarget(t, serve.Config{}, 4<<20)
	tgA, cA := openRecoveringTCP(t, addrA, 3)
	tgB, cB := openRecoveringTCP(t, addrB, 3)
	a, b := openLane(t, tgA), openLane(t, tgB)
	lanes := []*lane{a, b}
	drive(t, "before the drop", lanes, func() bool { return a.ok >= 100 && b.ok >= 100 })

	gate.hold(1) // the admin queue's new connection goes through; the I/O queue's waits
	if n := sA.DropConnections(); n != 2 {
		t.Fatalf("the target dropped %d connections, want the admin queue's and one I/O queue's", n)
	}
	// Should the worker block in A's connect, nothing but this opens the gate.
	const stallLimit = 30 * time.Second
	fallback := time.AfterFunc(stallLimit, gate.open)
	defer fallback.Stop()
	// The reads of A that were in flight at the drop complete (with an error, or
	// successfully if their answers were already received); those submitted since are
	// kept until the new connection. From when that connection is seen waiting, A
	// completes nothing.
	okB, okA, failedA := -1, 0, 0 // when A's connection was first seen waiting
	drive(t, "while A connects again", lanes, func() bool {
		if gate.isOpen() {
			return true
		}
		if gate.held() == 0 {
			return false
		}
		if okB < 0 {
			okB, okA, failedA = b.ok, a.ok, a.failed
		}
		return b.ok-okB >= 200
	})
	fallback.Stop()
	during := 0 // B's reads while A's connection waited
	if okB >= 0 {
		during = b.ok - okB
	}
	if during < 200 {
		t.Fatalf("the worker completed %d reads on B while A's new connection waited at its target (up to %v), want 200: A's reconnect blocked the worker",
			during, stallLimit)
	}
	if a.ok != okA || a.failed != failedA || a.q.Outstanding() != 8 || cA.EventCount(nvme.EventReconnect) != 0 {
		t.Fatalf("while A connects: %d reads of A succeeded and %d failed, %d outstanding, %d reconnect events; want none, none, 8 kept, none",
			a.ok-okA, a.failed-failedA, a.q.Outstanding(), cA.EventCount(nvme.EventReconnect))
	}
	t.Logf("B completed %d reads while A's connection waited at its target", during)

	gate.open()
	okA = a.ok
	drive(t, "after A's target answers", lanes, func() bool { return a.ok-okA >= 100 })
	if a.failed != failedA || b.failed != 0 {
		t.Fatalf("%d reads of A failed after the reconnect (want none: the 8 kept must succeed), %d of B (want 0)", a.failed-failedA, b.failed)
	}
	if cA.Err() != nil || cA.Resets() != 1 || cA.EventCount(nvme.EventReconnect) != 1 || cB.Resets() != 0 {
		t.Fatalf("A: err %v, %d resets, %d reconnects; B: %d resets; want none, 1, 1; 0", cA.Err(), cA.Resets(), cA.EventCount(nvme.EventReconnect), cB.Resets())
	}
	events, _ := cA.Events()
	if last := events[len(events)-1]; last.Kind != nvme.EventReconnect || !strings.Contains(last.Detail, "8 commands submitted meanwhile sent") {
		t.Fatalf("last event %+v, want the reconnect with the 8 kept reads", last)
	}
}

// TestTCPReconnectAbandonsAStaleConnect: a second reset while a queue pair's connect is
// under way makes that connect stale (it goes to the association the reset replaces):
// the host closes it, no failure of it is reported, and the queue pair connects to the
// new association and sends the reads it kept.
func TestTCPReconnectAbandonsAStaleConnect(t *testing.T) {
	s, gate, addr := startGatedTarget(t, 4<<20)
	tg, c := openRecoveringTCP(t, addr, 3)
	a := openLane(t, tg)
	lanes := []*lane{a}
	drive(t, "before the drop", lanes, func() bool { return a.ok >= 50 })
	dropAndHold(t, s, gate, c, lanes)
	failed := a.failed                // the reads in flight at the drop are done
	closed := watchClose(gate.take()) // the connect in flight: never answered

	// CSTS.CFS on the new association: the recovery goroutine's health check resets
	// the controller again (its admin connection waits at the gate).
	if n := s.SetFatal(); n != 1 {
		t.Fatalf("%d controllers set fatal, want 1", n)
	}
	var closeErr error
	drive(t, "waiting for the stale connection to be closed", lanes, func() bool {
		select {
		case closeErr = <-closed:
			return true
		default:
			return false
		}
	})
	if closeErr != nil {
		t.Fatalf("the stale connection: %v, want it closed by the host", closeErr)
	}
	gate.open()
	ok := a.ok
	drive(t, "after the second reset", lanes, func() bool { return a.ok-ok >= 50 })
	if a.failed != failed || c.Err() != nil || c.Resets() != 2 || c.EventCount(nvme.EventReconnect) != 1 {
		events, _ := c.Events()
		t.Fatalf("%d kept reads failed (want none), err %v, %d resets (want 2), %d reconnect events (want 1); events %+v",
			a.failed-failed, c.Err(), c.Resets(), c.EventCount(nvme.EventReconnect), events)
	}
	waitNoConnects(t)
}

// TestTCPReconnectGivesUpWhileConnecting: when recovery gives up while a queue pair
// connects, the connect is called off (the connection closed) and the kept reads fail
// with the error that ends the run.
func TestTCPReconnectGivesUpWhileConnecting(t *testing.T) {
	s, gate, addr := startGatedTarget(t, 4<<20)
	tg, c := openRecoveringTCP(t, addr, 1)
	a := openLane(t, tg)
	drive(t, "before the drop", []*lane{a}, func() bool { return a.ok >= 50 })
	dropAndHold(t, s, gate, c, []*lane{a})
	failed := a.failed
	closed := watchClose(gate.take())
	if n := s.SetFatal(); n != 1 { // a second failure; the one reset allowed is used
		events, _ := c.Events()
		t.Fatalf("%d controllers set fatal, want 1; events %+v", n, events)
	}
	var err error
	deadline := time.Now().Add(60 * time.Second)
	for err == nil {
		if time.Now().After(deadline) {
			t.Fatal("the queue pair did not fail within 60 s of the second failure")
		}
		err = a.poll()
	}
	if !errors.Is(err, nvme.ErrFailed) || !strings.Contains(err.Error(), "still failing after 1 resets") {
		t.Fatalf("poll: %v, want the controller failed after 1 reset", err)
	}
	if a.failed-failed != 8 || a.q.Outstanding() != 0 {
		t.Fatalf("%d kept reads failed, %d outstanding; want 8, none", a.failed-failed, a.q.Outstanding())
	}
	if err := <-closed; err != nil {
		t.Fatalf("the connection of the called-off connect: %v, want it closed by the host", err)
	}
	if c.Resets() != 1 {
		t.Fatalf("%d resets, want 1", c.Resets())
	}
	waitNoConnects(t)
}

// TestTCPReconnectDetachWhileConnecting: detaching the controller while a queue pair
// connects calls the connect off: Detach does not wait for the connect timeout, the
// connection is closed and no goroutine is left.
func TestTCPReconnectDetachWhileConnecting(t *testing.T) {
	s, gate, addr := startGatedTarget(t, 4<<20)
	tg, c := openRecoveringTCP(t, addr, 3)
	a := openLane(t, tg)
	drive(t, "before the drop", []*lane{a}, func() bool { return a.ok >= 50 })
	dropAndHold(t, s, gate, c, []*lane{a})
	closed := watchClose(gate.take())
	start := time.Now()
	if err := tg.Close(); err != nil { // Detach: frees the open queue pair
		t.Fatalf("detach: %v", err)
	}
	if d := time.Since(start); d >= reconnectTimeout/2 {
		t.Fatalf("detach took %v: it waited for the connect", d)
	}
	waitNoConnects(t)
	if err := <-closed; err != nil {
		t.Fatalf("the connection of the called-off connect: %v, want it closed by the host", err)
	}
}

// TestTCPReconnectFinishedAfterTheRun: a connect that finishes after the worker's last
// Poll (the run ended) leaves a connection nobody installed; closing the queue pair
// closes it.
func TestTCPReconnectFinishedAfterTheRun(t *testing.T) {
	s, gate, addr := startGatedTarget(t, 4<<20)
	tg, c := openRecoveringTCP(t, addr, 3)
	a := openLane(t, tg)
	drive(t, "before the drop", []*lane{a}, func() bool { return a.ok >= 50 })
	dropAndHold(t, s, gate, c, []*lane{a})
	// The run ends here: no more polls. The target answers, and the connect finishes.
	gate.open()
	waitNoConnects(t)
	conn := gate.lastHanded()
	select {
	case <-conn.hostClosed:
		t.Fatal("the new connection was closed before the queue pair was")
	default:
	}
	if err := a.close(); err != nil {
		t.Fatalf("closing the queue pair: %v", err)
	}
	select {
	case <-conn.hostClosed:
	case <-time.After(60 * time.Second):
		t.Fatal("the connection made after the run is still open 60 s after its queue pair was closed")
	}
	if n := c.EventCount(nvme.EventReconnect); n != 0 {
		t.Fatalf("%d reconnect events, want none (no Poll installed the connection)", n)
	}
}

// TestTCPRunEndsWhileAQueueReconnects: a run whose target drops its connections and
// then never answers the I/O queue's new connection ends at its deadline plus the
// drain timeout, with the I/Os done before the drop counted and the stuck ones
// reported; closing the queue pair calls its connect off instead of waiting for the
// (here five-minute) connect timeout, and no connect goroutine is left (docs/recovery.md,
// Limits).
func TestTCPRunEndsWhileAQueueReconnects(t *testing.T) {
	s, gate, addr := startGatedTarget(t, 4<<20)
	tg, c := openRecoveringTCP(t, addr, 8)
	var dropped atomic.Bool
	cfg := workload.Config{
		Pattern: workload.RandRead, IOSize: 4096, QueueDepth: 8,
		Duration: 3 * time.Second, DrainTimeout: time.Second, ContinueOnError: true,
		ProgressInterval: 100 * time.Millisecond,
		Progress: func(p workload.Progress) {
			if p.IOs > 100 && !dropped.Swap(true) {
				gate.hold(1) // the admin queue connects again; the I/O queue waits
				s.DropConnections()
			}
		},
	}
	start := time.Now()
	res := workload.Run(context.Background(), []target.Target{tg}, cfg)
	took := time.Since(start)
	if !dropped.Load() {
		t.Fatalf("the run never got to 100 I/Os to drop the connections (err %v)", res.Err)
	}
	// 3 s + 1 s drain; a run that waited for the connect would take 5 minutes.
	if took > 60*time.Second {
		t.Fatalf("the run took %v: it waited for the held connect", took)
	}
	if res.Err == nil || !strings.Contains(res.Err.Error(), "drain timeout") {
		t.Errorf("run error %v, want the kept I/Os reported as never completed within the drain timeout", res.Err)
	}
	var ios uint64
	for _, w := range res.Workers {
		ios += w.IOs
	}
	if ios < 100 {
		t.Errorf("%d I/Os counted, want the 100+ done before the drop", ios)
	}
	if gate.held() != 1 {
		t.Errorf("%d connections held at the target, want the I/O queue's one", gate.held())
	}
	if c.Resets() < 1 {
		t.Errorf("%d resets, want the one after the drop", c.Resets())
	}
	waitNoConnects(t)
}
