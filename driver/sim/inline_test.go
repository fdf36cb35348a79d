package sim_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// Inline mode through the real driver: nvme.Attach, queue pairs and NamespaceTarget over
// the inline controller's registers.

func newInline(t testing.TB, mod func(*sim.Config)) (*sim.Controller, *nvme.Controller) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Inline = true
	cfg.NamespaceSize = 64 << 20
	cfg.Store = sim.StoreMemory
	if mod != nil {
		mod(&cfg)
	}
	dev, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := dev.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	c, err := nvme.Attach(dev.Registers(), dev.Allocator(), nvme.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Detach(); err != nil {
			t.Errorf("Detach: %v", err)
		}
	})
	return dev, c
}

// collector records completions; resubmit makes it a closed loop.
type collector struct {
	q        target.Queue
	done     int
	errs     int
	resubmit bool
}

func (h *collector) Complete(r *target.Request) {
	h.done++
	if r.Err != nil {
		h.errs++
		return
	}
	if h.resubmit {
		if err := h.q.Submit(r); err != nil {
			panic(err)
		}
	}
}

// runAll submits reqs and polls until all completed; inline, no completion can come
// from elsewhere, so a bounded number of polls suffices.
func runAll(t testing.TB, q target.Queue, h *collector, reqs []target.Request) {
	t.Helper()
	h.done, h.errs = 0, 0
	for i := range reqs {
		if err := q.Submit(&reqs[i]); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	for polls := 0; h.done < len(reqs); polls++ {
		if _, err := q.Poll(); err != nil {
			t.Fatalf("poll: %v", err)
		}
		if polls > 100*len(reqs) {
			t.Fatalf("%d of %d requests completed after %d polls", h.done, len(reqs), polls)
		}
	}
	if h.errs != 0 {
		t.Fatalf("%d requests failed", h.errs)
	}
}

func pattern(seed, i int, b []byte) {
	for k := range b {
		b[k] = byte(seed*131 + i*31 + k*7 + k>>8)
	}
}

// roundTrip writes a pattern into blocks [first, first+n) through q and reads it back.
func roundTrip(t testing.TB, q target.Queue, h *collector, seed int, first uint64, n, ioSize int) {
	t.Helper()
	reqs := make([]target.Request, n)
	want := make([][]byte, n)
	for i := range reqs {
		pattern(seed, i, q.Buffer(i))
		want[i] = append([]byte(nil), q.Buffer(i)...)
		reqs[i] = target.Request{Op: target.OpWrite, Offset: (first + uint64(i)) * uint64(ioSize), Length: uint32(ioSize), Buf: i}
	}
	runAll(t, q, h, reqs)
	for i := range reqs {
		clear(q.Buffer(i))
		reqs[i].Op = target.OpRead
	}
	runAll(t, q, h, reqs)
	for i := range reqs {
		if !bytes.Equal(q.Buffer(i), want[i]) {
			t.Fatalf("seed %d block %d: read back differs from what was written", seed, first+uint64(i))
		}
	}
}

func openQueue(t testing.TB, c *nvme.Controller, h *collector, cfg target.QueueConfig) target.Queue {
	t.Helper()
	cfg.Handler = h
	q, err := nvme.NewTarget(c.Namespace(1), target.Info{}, nil).OpenQueue(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.q = q
	t.Cleanup(func() { q.Close() })
	return q
}

func TestInlineRoundTrip(t *testing.T) {
	for _, ioSize := range []int{4096, 128 << 10} { // one page; a PRP list
		t.Run(fmt.Sprint(ioSize), func(t *testing.T) {
			dev, c := newInline(t, nil)
			h := &collector{}
			q := openQueue(t, c, h, target.QueueConfig{Depth: 32, IOSize: ioSize})
			roundTrip(t, q, h, 1, 3, 32, ioSize)
			if v := dev.Violations(); v.Total != 0 {
				t.Errorf("%d spec violations (%v); last: %s", v.Total, v.Counts, v.Last)
			}
			if s := dev.Stats(); s.Writes != 32 || s.Reads != 32 || s.Errors != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// The model runs during the doorbell write: once Submit (doorbell per command) has
// returned, the controller has completed the command, before any Poll.
func TestInlineCompletesDuringTheDoorbellWrite(t *testing.T) {
	dev, c := newInline(t, nil)
	h := &collector{}
	q := openQueue(t, c, h, target.QueueConfig{Depth: 4, IOSize: 4096, Doorbell: target.DoorbellPerCommand})
	before := dev.Stats().Completions
	r := target.Request{Op: target.OpRead, Length: 4096}
	if err := q.Submit(&r); err != nil {
		t.Fatal(err)
	}
	if got := dev.Stats().Completions; got != before+1 {
		t.Fatalf("completions %d after the doorbell write, want %d", got, before+1)
	}
	if h.done != 0 {
		t.Fatal("the handler ran before Poll")
	}
	if n, err := q.Poll(); n != 1 || err != nil || h.done != 1 {
		t.Fatalf("poll: %d, %v (handler saw %d)", n, err, h.done)
	}
}

// The whole I/O path — target queue, queue pair, PRPs, doorbell, device model,
// completion, handler — allocates nothing.
func TestInlineIOPathAllocatesNothing(t *testing.T) {
	for _, store := range []sim.StorePolicy{sim.StoreDiscard, sim.StoreMemory} {
		_, c := newInline(t, func(cfg *sim.Config) { cfg.Store = store })
		h := &collector{resubmit: true}
		q := openQueue(t, c, h, target.QueueConfig{Depth: 32, IOSize: 64 << 10})
		reqs := make([]target.Request, 32)
		for i := range reqs {
			op := target.OpRead
			if i%2 == 1 {
				op = target.OpWrite
			}
			reqs[i] = target.Request{Op: op, Offset: uint64(i) * 64 << 10, Length: 64 << 10, Buf: i}
			if err := q.Submit(&reqs[i]); err != nil {
				t.Fatal(err)
			}
		}
		poll := func() {
			for range 64 {
				if _, err := q.Poll(); err != nil {
					t.Fatal(err)
				}
			}
		}
		poll() // warm up
		before := h.done
		allocs := testing.AllocsPerRun(50, poll)
		if allocs != 0 {
			t.Errorf("store %s: %v allocations per 64 polls, want 0", store, allocs)
		}
		if h.done == before || h.errs != 0 {
			t.Fatalf("store %s: %d completions during the measurement, %d errors", store, h.done-before, h.errs)
		}
	}
}

// Several workers, each on its own inline queue and OS thread, write and read back
// their own blocks at once (run under -race).
func TestInlineWorkersEachOnTheirOwnQueue(t *testing.T) {
	dev, c := newInline(t, nil)
	const workers, depth = 4, 16
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			h := &collector{}
			q, err := nvme.NewTarget(c.Namespace(1), target.Info{}, nil).OpenQueue(target.QueueConfig{Depth: depth, IOSize: 8192, Handler: h})
			if err != nil {
				errs <- err
				return
			}
			defer q.Close()
			h.q = q
			ft := &failT{}
			for round := range 20 {
				roundTrip(ft, q, h, w*100+round, uint64(w*depth), depth, 8192)
				if ft.msg != "" {
					errs <- fmt.Errorf("worker %d: %s", w, ft.msg)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v := dev.Violations(); v.Total != 0 {
		t.Errorf("%d spec violations (%v); last: %s", v.Total, v.Counts, v.Last)
	}
	if s := dev.Stats(); s.Writes != workers*20*depth || s.Reads != s.Writes {
		t.Errorf("stats: %d writes, %d reads, want %d each", s.Writes, s.Reads, workers*20*depth)
	}
}

// failT is a testing.TB for helpers run off the test goroutine: Fatalf records the
// message and ends the goroutine's work.
type failT struct {
	testing.TB
	msg string
}

func (f *failT) Helper() {}
func (f *failT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// Spec checks hold inline: bad doorbell values and reads of doorbells are counted,
// synchronously with the access.
func TestInlineViolationsCounted(t *testing.T) {
	dev, c := newInline(t, nil)
	h := &collector{}
	q := openQueue(t, c, h, target.QueueConfig{Depth: 4, QueueSize: 8, IOSize: 4096})
	roundTrip(t, q, h, 7, 0, 4, 4096)
	if v := dev.Violations(); v.Total != 0 {
		t.Fatalf("violations in a normal run: %v, last %s", v.Counts, v.Last)
	}
	qp := q.(interface{ QPair() *nvme.QPair }).QPair()
	regs := dev.Registers()
	sqDB := spec.SQTailDoorbell(qp.ID(), 0)
	regs.Write32(sqDB, uint32(qp.Entries())+1) // beyond the SQ
	v := dev.Violations()
	if v.Counts[sim.ViolationDoorbellValue] != 1 || !strings.Contains(v.Last, "tail") {
		t.Fatalf("SQ tail beyond the queue: %v, last %q", v.Counts, v.Last)
	}
	_ = regs.Read32(sqDB)
	if v := dev.Violations(); v.Counts[sim.ViolationDoorbellRead] != 1 {
		t.Fatalf("doorbell read: %v", v.Counts)
	}
	if s := dev.Stats(); s.InvalidDoorbells != 1 {
		t.Errorf("invalid doorbells %d, want 1", s.InvalidDoorbells)
	}
}

func TestInlineRefusesWhatNeedsAClock(t *testing.T) {
	for _, opts := range []map[string]string{
		{"mode": "inline", "model": "nand"},
		{"mode": "inline", "faildelay": "1ms"},
		{"mode": "inline", "shadowdb": "1"},
	} {
		_, err := sim.ParseOptions(opts)
		if err == nil || !strings.Contains(err.Error(), "mode inline") || !strings.Contains(err.Error(), "mode=thread") {
			t.Errorf("%v: error %v, want one naming mode inline and the alternative", opts, err)
		}
	}
	if _, err := sim.ParseOptions(map[string]string{"mode": "fast"}); err == nil || !strings.Contains(err.Error(), `"mode"`) {
		t.Errorf("mode fast: %v", err)
	}
	cfg, err := sim.ParseOptions(map[string]string{"mode": "inline", "model": "null"})
	if err != nil || !cfg.Inline {
		t.Fatalf("mode inline: %+v, %v", cfg.Inline, err)
	}
	dev, _ := newInline(t, nil)
	if err := dev.Faults().SetCompletionDelay(1000); err == nil || !strings.Contains(err.Error(), "inline") {
		t.Errorf("SetCompletionDelay inline: %v", err)
	}
}

// Faults still work inline: a failed Nth I/O completes with its status.
func TestInlineFailNthIO(t *testing.T) {
	dev, c := newInline(t, nil)
	h := &collector{}
	q := openQueue(t, c, h, target.QueueConfig{Depth: 4, IOSize: 4096})
	if err := dev.Faults().FailNthIO(2, spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCUnrecoveredReadError)); err != nil {
		t.Fatal(err)
	}
	reqs := make([]target.Request, 3)
	for i := range reqs {
		reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(i) * 4096, Length: 4096, Buf: i}
		if err := q.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for polls := 0; h.done < 3 && polls < 1000; polls++ {
		if _, err := q.Poll(); err != nil {
			t.Fatal(err)
		}
	}
	if h.done != 3 || h.errs != 1 || reqs[1].Err == nil {
		t.Fatalf("done %d errs %d, second request err %v", h.done, h.errs, reqs[1].Err)
	}
}

// BenchmarkNullWholePath is nvmeperf's cost per I/O on the simulator's null model,
// 4 KiB reads at QD 128 through NamespaceTarget: inline (one thread runs everything)
// and threaded (the device thread polls on another core). ns/op is per I/O; cpu-ns/op
// is the process's CPU per I/O (threaded: the device thread's included).
func BenchmarkNullWholePath(b *testing.B) {
	for _, inline := range []bool{true, false} {
		name := "inline"
		if !inline {
			name = "threaded"
		}
		b.Run(name, func(b *testing.B) {
			cfg := sim.DefaultConfig()
			cfg.Inline = inline
			cfg.Store = sim.StoreDiscard
			dev, err := sim.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer dev.Close()
			c, err := nvme.Attach(dev.Registers(), dev.Allocator(), nvme.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Detach()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			h := &collector{resubmit: true}
			q, err := nvme.NewTarget(c.Namespace(1), target.Info{}, nil).OpenQueue(target.QueueConfig{Depth: 128, QueueSize: 256, IOSize: 4096, Handler: h})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			h.q = q
			reqs := make([]target.Request, 128)
			for i := range reqs {
				reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(i) * 4096, Length: 4096, Buf: i}
				if err := q.Submit(&reqs[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			for h.done < b.N {
				if _, err := q.Poll(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			if h.errs != 0 {
				b.Fatalf("%d errors", h.errs)
			}
		})
	}
}

// processCPU is the process's user plus system CPU time so far. Benchmarks report it per
// operation (cpu-ns/op) beside ns/op: on a shared machine wall time follows the share of
// a core the run gets, CPU time much less.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
