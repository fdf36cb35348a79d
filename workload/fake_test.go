package workload

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/target"
)

var (
	errInjected     = errors.New("fake: injected I/O error")
	errDeviceFailed = errors.New("fake: device failed")
	errAborted      = errors.New("fake: aborted by device failure")
	errRefused      = errors.New("fake: submission refused")
)

// fakeTarget is an in-memory target.Target for engine tests: its queues complete
// requests from Poll in FIFO order, optionally after a latency, and can inject I/O
// errors, a device failure or a device that stops answering.
type fakeTarget struct {
	info target.Info

	latency   time.Duration                                 // completion no earlier than this after submit
	failIO    func(n uint64, op target.Op, off uint64) bool // n: 1-based completion number on the target
	failAfter uint64                                        // Poll fails once the target completed this many; 0 = never
	stuckAt   uint64                                        // stop completing after this many; 0 = never
	record    bool                                          // keep every submission's op and offset
	openErr   error
	refuseAt  uint64 // Submit refuses the request after this many were accepted; 0 = never
	store     []byte // when set, reads and writes move data to and from it

	mu     sync.Mutex
	queues []*fakeQueue

	submitted atomic.Uint64
	completed atomic.Uint64
}

type fakeOp struct {
	op  target.Op
	off uint64
}

func newFakeTarget(name string, capacity uint64, lbaSize uint32) *fakeTarget {
	return &fakeTarget{info: target.Info{Name: name, Transport: "fake", LBASize: lbaSize, Capacity: capacity}}
}

func (t *fakeTarget) Info() target.Info { return t.info }
func (t *fakeTarget) Close() error      { return nil }

func (t *fakeTarget) OpenQueue(cfg target.QueueConfig) (target.Queue, error) {
	if t.openErr != nil {
		return nil, t.openErr
	}
	n := cfg.Buffers
	if n == 0 {
		n = cfg.Depth
	}
	q := &fakeQueue{t: t, cfg: cfg, bufs: make([][]byte, n), ring: make([]pending, cfg.Depth)}
	for i := range q.bufs {
		q.bufs[i] = make([]byte, cfg.IOSize)
	}
	t.mu.Lock()
	t.queues = append(t.queues, q)
	t.mu.Unlock()
	return q, nil
}

// ops returns the recorded submissions of every queue, queue by queue.
func (t *fakeTarget) ops() [][]fakeOp {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][]fakeOp, len(t.queues))
	for i, q := range t.queues {
		out[i] = q.ops
	}
	return out
}

type pending struct {
	r  *target.Request
	at time.Time
}

type fakeQueue struct {
	t          *fakeTarget
	cfg        target.QueueConfig
	bufs       [][]byte
	ring       []pending
	head, used int
	ops        []fakeOp
	failed     bool
	closed     bool
}

func (q *fakeQueue) Buffer(i int) []byte { return q.bufs[i] }

func (q *fakeQueue) Submit(r *target.Request) error {
	if q.failed || q.closed {
		return errDeviceFailed
	}
	if q.t.refuseAt > 0 && q.t.submitted.Load() >= q.t.refuseAt {
		return errRefused
	}
	if q.used == len(q.ring) {
		return errors.New("fake: queue over depth")
	}
	var at time.Time
	if q.t.latency > 0 {
		at = time.Now()
	}
	q.ring[(q.head+q.used)%len(q.ring)] = pending{r: r, at: at}
	q.used++
	q.t.submitted.Add(1)
	if q.t.record {
		q.ops = append(q.ops, fakeOp{r.Op, r.Offset})
	}
	return nil
}

func (q *fakeQueue) Poll() (int, error) {
	if q.failed {
		return 0, errDeviceFailed
	}
	t := q.t
	var now time.Time
	if t.latency > 0 {
		now = time.Now()
	}
	n := 0
	for q.used > 0 && (q.cfg.MaxCompletions == 0 || n < q.cfg.MaxCompletions) {
		if t.failAfter > 0 && t.completed.Load() >= t.failAfter {
			// The device dies: like a real driver, abort what is outstanding.
			q.failed = true
			for q.used > 0 {
				r := q.pop()
				r.Err = errAborted
				q.cfg.Handler.Complete(r)
				n++
			}
			return n, errDeviceFailed
		}
		if t.latency > 0 && now.Sub(q.ring[q.head].at) < t.latency {
			break
		}
		if t.stuckAt > 0 && t.completed.Load() >= t.stuckAt {
			break
		}
		r := q.pop()
		seq := t.completed.Add(1)
		r.Err = nil
		if t.failIO != nil && t.failIO(seq, r.Op, r.Offset) {
			r.Err = errInjected
		} else if t.store != nil {
			t.mu.Lock()
			if r.Op == target.OpWrite {
				copy(t.store[r.Offset:r.Offset+uint64(r.Length)], q.bufs[r.Buf])
			} else {
				copy(q.bufs[r.Buf], t.store[r.Offset:r.Offset+uint64(r.Length)])
			}
			t.mu.Unlock()
		}
		q.cfg.Handler.Complete(r)
		n++
	}
	return n, nil
}

func (q *fakeQueue) pop() *target.Request {
	r := q.ring[q.head].r
	q.ring[q.head] = pending{}
	q.head = (q.head + 1) % len(q.ring)
	q.used--
	return r
}

func (q *fakeQueue) Outstanding() int { return q.used }

func (q *fakeQueue) Close() error {
	q.closed = true
	return nil
}
