package nvme_test

import (
	"bytes"
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// collector records completions: how often each request completed, and what the
// device had completed when it did.
type collector struct {
	dev       *sim.Controller
	calls     map[*target.Request]int
	devCpls   map[*target.Request]uint64 // sim completions posted when the handler ran
	completed int
}

func newCollector(dev *sim.Controller) *collector {
	return &collector{dev: dev, calls: map[*target.Request]int{}, devCpls: map[*target.Request]uint64{}}
}

func (h *collector) Complete(r *target.Request) {
	h.calls[r]++
	h.devCpls[r] = h.dev.Stats().Completions
	h.completed++
}

// waitAll polls q until every submitted request has completed (bounded).
func waitAll(t testing.TB, q target.Queue, h *collector, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for h.completed < want {
		if _, err := q.Poll(); err != nil {
			t.Fatalf("poll: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests completed in 20 s", h.completed, want)
		}
	}
	if n := q.Outstanding(); n != 0 {
		t.Fatalf("%d requests still outstanding after all completed", n)
	}
}

func openTarget(t testing.TB, c *nvme.Controller, cfg target.QueueConfig) target.Queue {
	t.Helper()
	tg := nvme.NewTarget(c.Namespace(1), target.Info{Name: "test"}, nil)
	q, err := tg.OpenQueue(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// TestSplitIOByteEquality writes and reads I/Os up to 4 MiB through a controller whose
// MDTS allows 8 KiB: every byte comes back, each parent completes exactly once and
// only after the device completed all of its children.
func TestSplitIOByteEquality(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.MDTS = 1; cfg.NamespaceSize = 32 << 20 })
	if c.MaxTransfer() != 8192 {
		t.Fatalf("MaxTransfer %d, want 8 KiB", c.MaxTransfer())
	}
	rng := rand.New(rand.NewSource(9))
	for _, offset := range []int{0, 4, 512} {
		h := newCollector(dev)
		q := openTarget(t, c, target.QueueConfig{Depth: 2, IOSize: 4 << 20, BufferOffset: offset, Handler: h})
		for _, size := range []int{512, 8192, 8192 + 512, 100 << 10, 1 << 20, 4 << 20} {
			want := make([]byte, size)
			rng.Read(want)
			copy(q.Buffer(0), want)
			lba := uint64(rng.Intn(1000))
			w := &target.Request{Op: target.OpWrite, Offset: lba * 512, Length: uint32(size), Buf: 0}
			before := dev.Stats()
			if err := q.Submit(w); err != nil {
				t.Fatal(err)
			}
			waitAll(t, q, h, h.completed+1)
			children := uint64((size + 8191) / 8192)
			if w.Err != nil {
				t.Fatalf("offset %d size %d: write: %v", offset, size, w.Err)
			}
			after := dev.Stats()
			if got := after.Writes - before.Writes; got != children {
				t.Errorf("size %d: %d write commands, want %d of at most 8 KiB", size, got, children)
			}
			if h.calls[w] != 1 || h.devCpls[w]-before.Completions < children {
				t.Errorf("size %d: handler ran %d times, after %d of %d children", size, h.calls[w], h.devCpls[w]-before.Completions, children)
			}
			clear(q.Buffer(1))
			r := &target.Request{Op: target.OpRead, Offset: lba * 512, Length: uint32(size), Buf: 1}
			if err := q.Submit(r); err != nil {
				t.Fatal(err)
			}
			waitAll(t, q, h, h.completed+1)
			if r.Err != nil {
				t.Fatalf("offset %d size %d: read: %v", offset, size, r.Err)
			}
			if !bytes.Equal(q.Buffer(1)[:size], want) {
				t.Fatalf("offset %d size %d: data read back differs", offset, size)
			}
		}
	}
}

// TestSplitChildErrorFailsParent: one failing child fails the whole I/O with its
// status, the handler runs once, and children not yet issued are dropped.
func TestSplitChildErrorFailsParent(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.MDTS = 1 })
	h := newCollector(dev)
	// Four SQ entries: a 1 MiB read (128 children) goes out three children at a time.
	q := openTarget(t, c, target.QueueConfig{Depth: 1, IOSize: 1 << 20, QueueSize: 4, Handler: h})
	bad := spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCUnrecoveredReadError)
	dev.Faults().FailLBARange(1, 40, 1, bad) // in the third child (LBAs 32-47)
	before := dev.Stats()
	r := &target.Request{Op: target.OpRead, Offset: 0, Length: 1 << 20, Buf: 0}
	if err := q.Submit(r); err != nil {
		t.Fatal(err)
	}
	waitAll(t, q, h, 1)
	var se *nvme.StatusError
	if !errors.As(r.Err, &se) || se.Status != bad || se.SLBA != 32 || se.NLB != 16 {
		t.Fatalf("parent error %v, want the third child's (LBA 32, 16 blocks) unrecovered read error", r.Err)
	}
	if h.calls[r] != 1 {
		t.Errorf("handler ran %d times", h.calls[r])
	}
	if issued := dev.Stats().IOCommands - before.IOCommands; issued >= 128 {
		t.Errorf("%d children issued after the failure; the rest should be dropped", issued)
	}
	// The queue goes on working.
	dev.Faults().ClearLBARange()
	r2 := &target.Request{Op: target.OpRead, Offset: 0, Length: 1 << 20, Buf: 0}
	if err := q.Submit(r2); err != nil {
		t.Fatal(err)
	}
	waitAll(t, q, h, 2)
	if r2.Err != nil {
		t.Fatal(r2.Err)
	}
}

// TestSplitManyParentsShareFewSlots keeps more split I/O in flight than the queue pair
// has slots: parents wait for slots in order and all complete.
func TestSplitManyParentsShareFewSlots(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.MDTS = 1; cfg.Store = sim.StoreDiscard })
	h := newCollector(dev)
	q := openTarget(t, c, target.QueueConfig{Depth: 16, IOSize: 256 << 10, QueueSize: 8, Handler: h})
	reqs := make([]target.Request, 16)
	for round := 0; round < 3; round++ {
		for i := range reqs {
			reqs[i] = target.Request{Op: target.Op(i % 2), Offset: uint64(i) << 18, Length: 256 << 10, Buf: i}
			if err := q.Submit(&reqs[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.Submit(&target.Request{Op: target.OpRead, Length: 512}); !errors.Is(err, nvme.ErrQueueFull) {
			t.Fatalf("submit beyond the depth: %v, want ErrQueueFull", err)
		}
		waitAll(t, q, h, (round+1)*16)
	}
	for i := range reqs {
		if reqs[i].Err != nil || h.calls[&reqs[i]] != 3 {
			t.Fatalf("request %d: err %v, completed %d times", i, reqs[i].Err, h.calls[&reqs[i]])
		}
	}
}

// TestIOUnitSize splits every I/O into io-unit sized commands (spdk_nvme_perf -O).
func TestIOUnitSize(t *testing.T) {
	dev, c := newSim(t, nil)
	h := newCollector(dev)
	q := openTarget(t, c, target.QueueConfig{Depth: 1, IOSize: 64 << 10, IOUnitSize: 4096, Handler: h})
	before := dev.Stats().Reads
	r := &target.Request{Op: target.OpRead, Length: 64 << 10}
	if err := q.Submit(r); err != nil {
		t.Fatal(err)
	}
	waitAll(t, q, h, 1)
	if got := dev.Stats().Reads - before; r.Err != nil || got != 16 {
		t.Fatalf("err %v, %d commands, want 16 of 4 KiB", r.Err, got)
	}
	tg := nvme.NewTarget(c.Namespace(1), target.Info{}, nil)
	for _, unit := range []int{100, 128 << 10} {
		if _, err := tg.OpenQueue(target.QueueConfig{Depth: 1, IOSize: 64 << 10, IOUnitSize: unit, Handler: h}); err == nil || !strings.Contains(err.Error(), "I/O unit size") {
			t.Errorf("unit %d: %v", unit, err)
		}
	}
}

// resubmit keeps every request going, as a benchmark worker does.
type resubmit struct {
	q target.Queue
	n int
}

func (h *resubmit) Complete(r *target.Request) {
	h.n++
	if r.Err != nil {
		panic(r.Err)
	}
	if err := h.q.Submit(r); err != nil {
		panic(err)
	}
}

// TestSplitIOAllocatesNothing: a 1 MiB I/O split into 128 commands costs no
// allocation, on metadata namespaces too.
func TestSplitIOAllocatesNothing(t *testing.T) {
	for _, mod := range []func(*sim.Config){
		func(cfg *sim.Config) {},
		func(cfg *sim.Config) { cfg.Format = sim.FormatConfig{MetadataSize: 8, Extended: true, PIType: 1} },
		func(cfg *sim.Config) { cfg.Format = sim.FormatConfig{MetadataSize: 16, PIType: 2} },
	} {
		_, c := newSim(t, func(cfg *sim.Config) { cfg.MDTS = 1; cfg.Store = sim.StoreDiscard; mod(cfg) })
		h := &resubmit{}
		q := openTarget(t, c, target.QueueConfig{Depth: 4, IOSize: 1 << 20, Handler: h,
			Protection: target.Protection{Check: target.PICheckGuard | target.PICheckAppTag | target.PICheckRefTag}})
		h.q = q
		reqs := make([]target.Request, 4)
		for i := range reqs {
			reqs[i] = target.Request{Op: target.Op(i % 2), Offset: uint64(i) << 20, Length: 1 << 20, Buf: i}
			if err := q.Submit(&reqs[i]); err != nil {
				t.Fatal(err)
			}
		}
		for h.n < 20 {
			if _, err := q.Poll(); err != nil {
				t.Fatal(err)
			}
		}
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := q.Poll(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Poll with split resubmission allocates %.1f times per call", allocs)
		}
	}
}

// TestSplitControllerFailure: when the controller dies with split I/O in flight and
// parents still waiting for slots, Poll reports the failure and every parent completes
// exactly once, with an error.
func TestSplitControllerFailure(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.MDTS = 1; cfg.Store = sim.StoreDiscard })
	h := newCollector(dev)
	q := openTarget(t, c, target.QueueConfig{Depth: 8, IOSize: 256 << 10, QueueSize: 8, Handler: h})
	dev.Faults().SetFrozen(true) // nothing completes: 7 children out, the rest wait
	reqs := make([]target.Request, 8)
	for i := range reqs {
		reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(i) << 18, Length: 256 << 10, Buf: i}
		if err := q.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	dev.Faults().SetFatal()
	deadline := time.Now().Add(20 * time.Second)
	var perr error
	for perr == nil {
		_, perr = q.Poll()
		if time.Now().After(deadline) {
			t.Fatal("Poll never reported the dead controller")
		}
	}
	if !errors.Is(perr, nvme.ErrFailed) {
		t.Fatalf("poll error %v, want ErrFailed", perr)
	}
	q.Poll() // anything deferred is delivered by now at the latest
	if h.completed != 8 || q.Outstanding() != 0 {
		t.Fatalf("%d of 8 parents completed, %d outstanding", h.completed, q.Outstanding())
	}
	for i := range reqs {
		if h.calls[&reqs[i]] != 1 || reqs[i].Err == nil {
			t.Errorf("request %d: completed %d times, err %v", i, h.calls[&reqs[i]], reqs[i].Err)
		}
	}
	if err := q.Submit(&reqs[0]); err == nil {
		t.Error("submit on a failed queue accepted")
	}
}

// TestOneCommandIOFailsInsideSubmit: with a doorbell per command, a removed device
// fails the queue pair while Submit rings the doorbell, and the queue pair completes
// that command before Submit returns. An I/O that is one command goes out without the
// FIFO (issueOne); it must still complete exactly once, with an error, at the next
// Poll, like every I/O outstanding before it.
func TestOneCommandIOFailsInsideSubmit(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.Store = sim.StoreDiscard })
	h := newCollector(dev)
	q := openTarget(t, c, target.QueueConfig{Depth: 4, IOSize: 4096, Doorbell: target.DoorbellPerCommand, Handler: h})
	dev.Faults().SetFrozen(true) // the first commands stay outstanding
	reqs := make([]target.Request, 4)
	for i := range reqs[:3] {
		reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(i) * 4096, Length: 4096, Buf: i}
		if err := q.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := dev.Remove(); err != nil {
		t.Fatal(err)
	}
	reqs[3] = target.Request{Op: target.OpRead, Offset: 3 * 4096, Length: 4096, Buf: 3}
	if err := q.Submit(&reqs[3]); err != nil {
		t.Fatalf("Submit while the doorbell faults: %v (the failure belongs to the request, delivered by Poll)", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for h.completed < len(reqs) && time.Now().Before(deadline) {
		q.Poll()
	}
	if h.completed != len(reqs) || q.Outstanding() != 0 {
		t.Fatalf("%d of %d requests completed, %d outstanding", h.completed, len(reqs), q.Outstanding())
	}
	for i := range reqs {
		if h.calls[&reqs[i]] != 1 || reqs[i].Err == nil {
			t.Errorf("request %d: completed %d times, err %v", i, h.calls[&reqs[i]], reqs[i].Err)
		}
	}
	if _, err := q.Poll(); !errors.Is(err, nvme.ErrFailed) {
		t.Errorf("Poll after the removal: %v, want ErrFailed", err)
	}
}
