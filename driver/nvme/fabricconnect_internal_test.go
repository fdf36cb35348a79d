package nvme

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// gatedFabric is a Fabric whose ConnectQueue waits until the test lets it return
// (release); cancellableFabric's also ends when its context is done.
type gatedFabric struct {
	release chan struct{}
	started chan struct{} // one value per connect begun
	made    atomic.Int32
	last    atomic.Pointer[countingQueue] // the last connection made
	mu      sync.Mutex
	all     []*countingQueue // every connection made
}

func newGatedFabric() *gatedFabric {
	return &gatedFabric{release: make(chan struct{}), started: make(chan struct{}, 8)}
}

func (f *gatedFabric) Alloc(size int) (bus.Buffer, error) {
	return bus.Buffer{Bytes: make([]byte, size)}, nil
}
func (f *gatedFabric) Free(bus.Buffer) error { return nil }
func (f *gatedFabric) Name() string          { return "gated" }
func (f *gatedFabric) Close() error          { return nil }

func (f *gatedFabric) ConnectQueue(cfg FabricQueueConfig) (FabricQueue, error) {
	return f.connect(context.Background())
}

func (f *gatedFabric) connect(ctx context.Context) (FabricQueue, error) {
	f.started <- struct{}{}
	select {
	case <-f.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	fq := &countingQueue{}
	f.last.Store(fq)
	f.mu.Lock()
	f.all = append(f.all, fq)
	f.mu.Unlock()
	f.made.Add(1)
	return fq, nil
}

// cancellableFabric is gatedFabric with ConnectQueueContext.
type cancellableFabric struct{ *gatedFabric }

func (f cancellableFabric) ConnectQueueContext(ctx context.Context, _ FabricQueueConfig) (FabricQueue, error) {
	return f.connect(ctx)
}

// countingQueue counts its Close calls.
type countingQueue struct{ closes atomic.Int32 }

func (q *countingQueue) Submit(*spec.Command, []byte) error { return nil }
func (q *countingQueue) Process(Completer) error            { return nil }
func (q *countingQueue) Close() error                       { q.closes.Add(1); return nil }

func connectingQPair(f Fabric) *QPair {
	return &QPair{ctrl: &Controller{fabric: f}, id: 1, fab: fabricQueueState{cfg: FabricQueueConfig{QID: 1}}}
}

func waitStarted(t *testing.T, f *gatedFabric) {
	t.Helper()
	select {
	case <-f.started:
	case <-time.After(60 * time.Second):
		t.Fatal("the connect goroutine did not start within 60 s")
	}
}

func waitDone(t *testing.T, cn *fabricConnect) {
	t.Helper()
	select {
	case <-cn.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the connect goroutine did not end within 60 s")
	}
}

// TestFabricConnectHandsOverItsResult: the owner finds the connection once the connect
// goroutine is done, and nothing closes it.
func TestFabricConnectHandsOverItsResult(t *testing.T) {
	f := newGatedFabric()
	q := connectingQPair(f)
	q.startConnect(7)
	cn := q.fab.connecting
	waitStarted(t, f)
	select {
	case <-cn.done:
		t.Fatal("the connect is done before the fabric answered")
	default:
	}
	close(f.release)
	waitDone(t, cn)
	fq, ok := cn.fq.(*countingQueue)
	if !ok || cn.err != nil || cn.gen != 7 || fq.closes.Load() != 0 {
		t.Fatalf("result %v, %v for generation %d; want an open queue for generation 7", cn.fq, cn.err, cn.gen)
	}
}

// TestFabricConnectAbandonedWhileConnecting: a connect given up on before it finishes
// closes the connection it then makes; the owner does not wait for it.
func TestFabricConnectAbandonedWhileConnecting(t *testing.T) {
	f := newGatedFabric()
	q := connectingQPair(f)
	q.startConnect(1)
	cn := q.fab.connecting
	waitStarted(t, f)
	q.dropConnect() // returns at once: the fabric has not answered
	if q.fab.connecting != nil {
		t.Fatal("the queue pair still has the dropped connect")
	}
	close(f.release)
	waitDone(t, cn)
	if f.made.Load() != 1 || cn.fq != nil || cn.err != nil {
		t.Fatalf("%d connections made, handed over %v, %v; want 1, none", f.made.Load(), cn.fq, cn.err)
	}
	if n := f.last.Load().closes.Load(); n != 1 {
		t.Fatalf("the connection made after the connect was given up was closed %d times, want once", n)
	}
}

// TestFabricConnectAbandonedAfterItFinished: a connect that finished but that no Poll
// installed is closed when it is given up.
func TestFabricConnectAbandonedAfterItFinished(t *testing.T) {
	f := newGatedFabric()
	q := connectingQPair(f)
	q.startConnect(1)
	cn := q.fab.connecting
	close(f.release)
	waitDone(t, cn)
	fq := cn.fq.(*countingQueue)
	q.stopConnect()
	if fq.closes.Load() != 1 {
		t.Fatalf("the finished connection was closed %d times, want once", fq.closes.Load())
	}
}

// TestFabricConnectStopWaits: stopConnect (the queue pair is freed) cancels a
// cancellable connect and returns once its goroutine ended; with a transport that
// cannot be cancelled it waits for the connect, and closes what it made.
func TestFabricConnectStopWaits(t *testing.T) {
	f := newGatedFabric()
	q := connectingQPair(cancellableFabric{f})
	q.startConnect(1)
	cn := q.fab.connecting
	waitStarted(t, f)
	q.stopConnect() // the fabric never answers: only the cancel ends it
	select {
	case <-cn.done:
	default:
		t.Fatal("stopConnect returned before the connect goroutine ended")
	}
	if f.made.Load() != 0 || cn.fq != nil || cn.err != nil {
		t.Fatalf("%d connections made, result %v, %v; want none", f.made.Load(), cn.fq, cn.err)
	}

	g := newGatedFabric()
	q = connectingQPair(g)
	q.startConnect(1)
	cn = q.fab.connecting
	waitStarted(t, g)
	stopped := make(chan struct{})
	go func() { q.stopConnect(); close(stopped) }()
	time.AfterFunc(100*time.Millisecond, func() { close(g.release) })
	select {
	case <-stopped:
	case <-time.After(60 * time.Second):
		t.Fatal("stopConnect did not return within 60 s of the connect's end")
	}
	if g.made.Load() != 1 || cn.fq != nil || g.last.Load().closes.Load() != 1 {
		t.Fatalf("%d connections made, handed over %v; want 1, closed once, none handed over", g.made.Load(), cn.fq)
	}
}

// TestFabricReconnectNewGenerationMidConnect: when the reset generation moves on while
// the queue pair connects (a reset that came and went between two polls), the next
// Poll drops that connect and starts one for the new generation; the stale connection
// is closed and only the new one is installed.
func TestFabricReconnectNewGenerationMidConnect(t *testing.T) {
	f := newGatedFabric()
	c := &Controller{fabric: f}
	q := &QPair{ctrl: c, id: 1, fab: fabricQueueState{cfg: FabricQueueConfig{QID: 1}}, fabric: parkedQueue{}}
	q.fab.parked = true
	c.rec.gen.Store(1) // the reset that parked it is done
	if n, err := q.pollRecoveringFabric(); n != 0 || err != nil {
		t.Fatalf("first poll: %d, %v", n, err)
	}
	stale := q.fab.connecting
	if stale == nil || stale.gen != 1 {
		t.Fatal("the first poll of generation 1 started no connect for it")
	}
	waitStarted(t, f)
	c.rec.gen.Store(2) // another reset, done before this poll
	if n, err := q.pollRecoveringFabric(); n != 0 || err != nil || !q.fab.parked {
		t.Fatalf("poll after the new generation: %d, %v, parked %v; want 0, nil, parked", n, err, q.fab.parked)
	}
	fresh := q.fab.connecting
	if fresh == nil || fresh == stale || fresh.gen != 2 {
		t.Fatal("the poll of generation 2 did not replace the stale connect")
	}
	waitStarted(t, f)
	close(f.release) // both connects finish
	waitDone(t, stale)
	waitDone(t, fresh)
	if _, err := q.pollRecoveringFabric(); err != nil || q.fab.parked || q.fab.connecting != nil {
		t.Fatalf("poll after the connect: %v, parked %v; want the connection installed", err, q.fab.parked)
	}
	installed, ok := q.fabric.(*countingQueue)
	if !ok || installed.closes.Load() != 0 {
		t.Fatalf("installed %T; want an open connection", q.fabric)
	}
	// The stale connect made a connection too: closed once, not installed.
	if len(f.all) != 2 {
		t.Fatalf("%d connections made, want 2", len(f.all))
	}
	for _, fq := range f.all {
		if fq != installed && fq.closes.Load() != 1 {
			t.Fatalf("the stale connection was closed %d times, want once", fq.closes.Load())
		}
	}
	if c.EventCount(EventReconnect) != 1 || q.rcv.gen != 2 {
		t.Fatalf("%d reconnect events, generation %d; want 1, 2", c.EventCount(EventReconnect), q.rcv.gen)
	}
}
