package workload

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/target"
)

// allowedCPUs returns the CPUs this process may run on.
func allowedCPUs(t *testing.T) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatalf("SchedGetaffinity: %v", err)
	}
	var cpus []int
	for i := 0; i <= maxCPU; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

func totals(res Result) (reads, writes, errs uint64) {
	for _, j := range res.Jobs {
		reads += j.Read.IOs
		writes += j.Write.IOs
		errs += j.Read.Errors + j.Write.Errors
	}
	return
}

func run(t *testing.T, cfg Config, targets ...*fakeTarget) Result {
	t.Helper()
	return runCtx(t, context.Background(), cfg, targets...)
}

func runCtx(t *testing.T, ctx context.Context, cfg Config, targets ...*fakeTarget) Result {
	t.Helper()
	ts := make([]target.Target, len(targets))
	for i, f := range targets {
		ts[i] = f
	}
	return Run(ctx, ts, cfg)
}

func TestAssignLikeSPDK(t *testing.T) {
	cases := []struct {
		workers, targets int
		want             []assignment
	}{
		{4, 1, []assignment{{0, 0}, {1, 0}, {2, 0}, {3, 0}}},
		{1, 4, []assignment{{0, 0}, {0, 1}, {0, 2}, {0, 3}}},
		{2, 3, []assignment{{0, 0}, {1, 1}, {0, 2}}},
		{3, 2, []assignment{{0, 0}, {1, 1}, {2, 0}}},
	}
	for _, tc := range cases {
		got := assign(tc.workers, tc.targets)
		if len(got) != len(tc.want) {
			t.Fatalf("%d workers %d targets: %v, want %v", tc.workers, tc.targets, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%d workers %d targets: %v, want %v", tc.workers, tc.targets, got, tc.want)
				break
			}
		}
	}
}

func TestRunAssignsTargetsToPinnedWorkers(t *testing.T) {
	cpus := allowedCPUs(t)
	if len(cpus) > 2 {
		cpus = cpus[:2]
	}
	// One target, every worker drives it.
	one := newFakeTarget("one", 1<<20, 512)
	cfg := Config{Pattern: RandRead, IOSize: 4096, QueueDepth: 4, NumIOs: 400, Duration: 10 * time.Second, Cores: cpus}
	res := run(t, cfg, one)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(res.Jobs) != len(cpus) {
		t.Fatalf("%d jobs for 1 target on %d cores", len(res.Jobs), len(cpus))
	}
	for i, j := range res.Jobs {
		if j.Core != cpus[i] || j.Target.Name != "one" || j.QPairs != 1 || j.Read.IOs == 0 {
			t.Errorf("job %d: core %d target %s qpairs %d reads %d", i, j.Core, j.Target.Name, j.QPairs, j.Read.IOs)
		}
	}
	if len(one.queues) != len(cpus) {
		t.Errorf("target opened %d queues, want one per worker (%d)", len(one.queues), len(cpus))
	}

	// Three targets, one unpinned worker drives all.
	ts := []*fakeTarget{newFakeTarget("a", 1<<20, 512), newFakeTarget("b", 1<<20, 512), newFakeTarget("c", 1<<20, 512)}
	cfg.Cores = nil
	res = run(t, cfg, ts...)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(res.Jobs) != 3 {
		t.Fatalf("%d jobs for 3 targets on 1 worker", len(res.Jobs))
	}
	for i, j := range res.Jobs {
		if j.Core != -1 || j.Target.Name != ts[i].info.Name || j.Read.IOs == 0 {
			t.Errorf("job %d: core %d target %s reads %d", i, j.Core, j.Target.Name, j.Read.IOs)
		}
	}
}

func TestPinFailureNamesCPU(t *testing.T) {
	cfg := Config{Pattern: Read, IOSize: 512, QueueDepth: 1, Duration: time.Second, Cores: []int{maxCPU}}
	ft := newFakeTarget("f", 1<<20, 512)
	res := run(t, cfg, ft)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "CPU 1023") {
		t.Fatalf("pinning to an absent CPU: err %v, want one naming CPU 1023", res.Err)
	}
	if ft.submitted.Load() != 0 {
		t.Errorf("%d I/Os submitted despite the failed set-up", ft.submitted.Load())
	}
}

func TestTargetGeometryChecked(t *testing.T) {
	cfg := Config{Pattern: Read, IOSize: 1000, QueueDepth: 1, Duration: time.Second}
	res := run(t, cfg, newFakeTarget("f", 1<<20, 512))
	if res.Err == nil || !strings.Contains(res.Err.Error(), "multiple of the LBA size 512") {
		t.Errorf("IOSize 1000 on 512-byte LBAs: %v", res.Err)
	}
	cfg.IOSize = 8192
	res = run(t, cfg, newFakeTarget("f", 4096, 512))
	if res.Err == nil || !strings.Contains(res.Err.Error(), "larger than the capacity 4096") {
		t.Errorf("IOSize above capacity: %v", res.Err)
	}
	ft := newFakeTarget("f", 1<<20, 512)
	ft.openErr = errors.New("no queues left")
	cfg.IOSize = 4096
	res = run(t, cfg, ft)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "no queues left") {
		t.Errorf("OpenQueue failure: %v", res.Err)
	}
	if res = Run(context.Background(), nil, cfg); res.Err == nil {
		t.Error("no targets accepted")
	}
}

func TestOffsetsAlignedAndInRange(t *testing.T) {
	const ioSize, capacity = 4096, 100*4096 + 512 // a partial slot at the end
	for p := Read; p < numPatterns; p++ {
		ft := newFakeTarget("f", capacity, 512)
		ft.record = true
		cfg := Config{Pattern: p, ReadPercent: 50, IOSize: ioSize, QueueDepth: 8, NumIOs: 2000, Duration: 10 * time.Second, Seed: 1}
		res := run(t, cfg, ft)
		if res.Err != nil {
			t.Fatalf("%v: %v", p, res.Err)
		}
		reads, writes, _ := totals(res)
		if reads+writes != 2000 {
			t.Errorf("%v: %d I/Os, want 2000", p, reads+writes)
		}
		slots := map[uint64]bool{}
		nreads := 0
		for _, ops := range ft.ops() {
			for _, op := range ops {
				if op.off%ioSize != 0 || op.off+ioSize > capacity {
					t.Fatalf("%v: offset %d not aligned or past the last full slot", p, op.off)
				}
				slots[op.off] = true
				if op.op == target.OpRead {
					nreads++
				}
			}
		}
		switch p {
		case Read, RandRead:
			if uint64(nreads) != ft.submitted.Load() || writes != 0 {
				t.Errorf("%v: %d writes", p, writes)
			}
		case Write, RandWrite:
			if nreads != 0 || reads != 0 {
				t.Errorf("%v: %d reads", p, reads)
			}
		}
		if len(slots) != 100 {
			t.Errorf("%v: touched %d slots of 100 in 2000 I/Os", p, len(slots))
		}
	}
}

func TestSequentialOrder(t *testing.T) {
	ft := newFakeTarget("f", 10*8192, 512)
	ft.record = true
	cfg := Config{Pattern: Write, IOSize: 8192, QueueDepth: 3, NumIOs: 25, Duration: 10 * time.Second}
	if res := run(t, cfg, ft); res.Err != nil {
		t.Fatal(res.Err)
	}
	ops := ft.ops()[0]
	if len(ops) != 25 {
		t.Fatalf("%d submissions, want 25", len(ops))
	}
	for i, op := range ops {
		if want := uint64(i%10) * 8192; op.off != want || op.op != target.OpWrite {
			t.Errorf("I/O %d: %v at %d, want write at %d", i, op.op, op.off, want)
		}
	}
}

func TestReadShare(t *testing.T) {
	for _, pct := range []int{0, 30, 70, 100} {
		cfg := Config{Pattern: RandRW, ReadPercent: pct, IOSize: 512, QueueDepth: 16, NumIOs: 20000, Duration: 10 * time.Second, Seed: 5}
		res := run(t, cfg, newFakeTarget("f", 1<<24, 512))
		reads, writes, _ := totals(res)
		got := float64(reads) / float64(reads+writes) * 100
		if res.Err != nil || got < float64(pct)-2 || got > float64(pct)+2 {
			t.Errorf("read percent %d: got %.1f%% reads (%d/%d), err %v", pct, got, reads, reads+writes, res.Err)
		}
	}
}

func TestSameSeedSameOffsets(t *testing.T) {
	trace := func(seed uint64, theta float64) []fakeOp {
		ft := newFakeTarget("f", 1<<26, 512)
		ft.record = true
		cfg := Config{Pattern: RandRW, ReadPercent: 50, IOSize: 4096, QueueDepth: 4, NumIOs: 500, Duration: 10 * time.Second, Seed: seed, ZipfTheta: theta}
		if res := run(t, cfg, ft); res.Err != nil {
			t.Fatal(res.Err)
		}
		return ft.ops()[0]
	}
	for _, theta := range []float64{0, 0.9} {
		a, b, c := trace(42, theta), trace(42, theta), trace(43, theta)
		if len(a) != 500 || len(b) != 500 {
			t.Fatalf("%d and %d submissions", len(a), len(b))
		}
		differ := 0
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("theta %v: same seed, I/O %d differs: %v vs %v", theta, i, a[i], b[i])
			}
			if a[i] != c[i] {
				differ++
			}
		}
		if differ < 250 {
			t.Errorf("theta %v: seeds 42 and 43 agree on %d of 500 I/Os", theta, 500-differ)
		}
	}
}

func TestNumIOsExact(t *testing.T) {
	ts := []*fakeTarget{newFakeTarget("a", 1<<20, 512), newFakeTarget("b", 1<<20, 512), newFakeTarget("c", 1<<20, 512)}
	cfg := Config{Pattern: RandRW, ReadPercent: 50, IOSize: 512, QueueDepth: 32, NumIOs: 1001, Duration: 10 * time.Second}
	res := run(t, cfg, ts...)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	for i, j := range res.Jobs {
		want := []uint64{334, 334, 333}[i]
		if got := j.Read.IOs + j.Write.IOs; got != want {
			t.Errorf("job %d: %d I/Os, want its share %d", i, got, want)
		}
		if got := ts[i].submitted.Load(); got != want {
			t.Errorf("target %d: %d submitted, want %d", i, got, want)
		}
	}
	if res.Duration <= 0 || res.Duration > 5*time.Second {
		t.Errorf("duration %v", res.Duration)
	}

	// With warm-up, NumIOs counts measured I/Os only, still exactly.
	ft := newFakeTarget("w", 1<<20, 512)
	cfg = Config{Pattern: RandRead, IOSize: 512, QueueDepth: 64, NumIOs: 5000, Warmup: 50 * time.Millisecond, Duration: 10 * time.Second}
	res = run(t, cfg, ft)
	reads, _, _ := totals(res)
	if res.Err != nil || reads != 5000 {
		t.Errorf("with warm-up: %d reads, want 5000 (err %v)", reads, res.Err)
	}
	if ft.submitted.Load() <= 5000 {
		t.Errorf("target saw %d I/Os: warm-up I/Os missing", ft.submitted.Load())
	}
}

func TestWarmupExcluded(t *testing.T) {
	ft := newFakeTarget("f", 1<<20, 512)
	cfg := Config{Pattern: RandRead, IOSize: 512, QueueDepth: 8, Warmup: 100 * time.Millisecond, Duration: 100 * time.Millisecond}
	begin := time.Now()
	res := run(t, cfg, ft)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	reads, _, _ := totals(res)
	all := ft.completed.Load()
	if reads == 0 || reads >= all {
		t.Errorf("result counts %d reads, target completed %d: warm-up not excluded", reads, all)
	}
	if res.Duration < 100*time.Millisecond || res.Duration > time.Second {
		t.Errorf("measured duration %v, want about 100ms", res.Duration)
	}
	if !res.Start.After(begin.Add(90 * time.Millisecond)) {
		t.Errorf("Start %v is within the warm-up (run began %v)", res.Start, begin)
	}
	if got := res.Jobs[0].Read.Latency.TotalCount(); uint64(got) != reads {
		t.Errorf("histogram holds %d samples for %d reads", got, reads)
	}
}

func TestIOErrorStopsRun(t *testing.T) {
	ft := newFakeTarget("f", 1<<20, 512)
	ft.failIO = func(n uint64, _ target.Op, _ uint64) bool { return n == 50 }
	cfg := Config{Pattern: RandRead, IOSize: 512, QueueDepth: 4, Duration: 10 * time.Second}
	begin := time.Now()
	res := run(t, cfg, ft)
	if !errors.Is(res.Err, errInjected) {
		t.Fatalf("Err %v, want the injected error", res.Err)
	}
	if time.Since(begin) > 5*time.Second {
		t.Errorf("run went on for %v after the error", time.Since(begin))
	}
	reads, _, errs := totals(res)
	if errs != 1 || reads < 40 || reads > 60 {
		t.Errorf("%d reads and %d errors, want about 49 and 1", reads, errs)
	}
	if res.Interrupted {
		t.Error("an I/O error is not an interruption")
	}
}

func TestContinueOnErrorCounts(t *testing.T) {
	ft := newFakeTarget("f", 1<<20, 512)
	ft.failIO = func(n uint64, _ target.Op, _ uint64) bool { return n%10 == 0 }
	cfg := Config{Pattern: RandRW, ReadPercent: 50, IOSize: 512, QueueDepth: 4, NumIOs: 1000, Duration: 10 * time.Second, ContinueOnError: true}
	res := run(t, cfg, ft)
	if res.Err != nil {
		t.Fatalf("Err %v with ContinueOnError", res.Err)
	}
	reads, writes, errs := totals(res)
	if errs != 100 || reads+writes != 900 {
		t.Errorf("%d ok and %d errors, want 900 and 100", reads+writes, errs)
	}
	var latCount int64
	for _, j := range res.Jobs {
		latCount += j.Read.Latency.TotalCount() + j.Write.Latency.TotalCount()
	}
	if latCount != 900 {
		t.Errorf("%d latency samples, want only the 900 successful I/Os", latCount)
	}
}

func TestDeviceFailureKeepsPartialStats(t *testing.T) {
	bad := newFakeTarget("bad", 1<<20, 512)
	bad.failAfter = 500
	good := newFakeTarget("good", 1<<20, 512)
	good.latency = 20 * time.Microsecond
	cfg := Config{Pattern: RandRead, IOSize: 512, QueueDepth: 8, Duration: 150 * time.Millisecond}
	// Both targets on one worker: the failure takes out only its own target.
	res := run(t, cfg, bad, good)
	if !errors.Is(res.Err, errDeviceFailed) || !strings.Contains(res.Err.Error(), "bad") {
		t.Fatalf("Err %v, want the device failure of bad", res.Err)
	}
	b, g := res.Jobs[0], res.Jobs[1]
	// Whatever was in flight at the failure was aborted and counts as errors.
	if b.Read.IOs != 500 || b.Read.Errors == 0 || b.Read.Errors != bad.submitted.Load()-500 {
		t.Errorf("failed target: %d reads %d errors of %d submitted, want 500 and the aborted rest", b.Read.IOs, b.Read.Errors, bad.submitted.Load())
	}
	if g.Read.IOs == 0 || g.Read.Errors != 0 || res.Duration < 150*time.Millisecond {
		t.Errorf("healthy target: %d reads %d errors over %v; it should run the whole duration", g.Read.IOs, g.Read.Errors, res.Duration)
	}
}

func TestSubmitFailureEndsTarget(t *testing.T) {
	ft := newFakeTarget("f", 1<<20, 512)
	ft.refuseAt = 100
	cfg := Config{Pattern: RandRead, IOSize: 512, QueueDepth: 4, Duration: 10 * time.Second}
	begin := time.Now()
	res := run(t, cfg, ft)
	if !errors.Is(res.Err, errRefused) || !strings.Contains(res.Err.Error(), "submit read") {
		t.Fatalf("Err %v, want the refused submission", res.Err)
	}
	if el := time.Since(begin); el > 5*time.Second {
		t.Errorf("run went on for %v with its only target broken", el)
	}
	if reads, _, errs := totals(res); reads != 100 || errs != 0 {
		t.Errorf("%d reads %d errors, want the 100 accepted ones completed", reads, errs)
	}
}

func TestCancelInterruptsAndDrains(t *testing.T) {
	ft := newFakeTarget("f", 1<<20, 512)
	ft.latency = 200 * time.Microsecond
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	cfg := Config{Pattern: RandWrite, IOSize: 512, QueueDepth: 16, Duration: 20 * time.Second}
	begin := time.Now()
	res := runCtx(t, ctx, cfg, ft)
	if !res.Interrupted || res.Err != nil {
		t.Fatalf("Interrupted %v Err %v", res.Interrupted, res.Err)
	}
	if el := time.Since(begin); el > 5*time.Second {
		t.Errorf("cancel took %v to return", el)
	}
	// Set-up time before the clock starts is not measured, so on a loaded machine
	// the measured part can be well under the 100 ms to the cancel.
	if res.Duration <= 0 || res.Duration > 2*time.Second {
		t.Errorf("duration %v, want at most about 100ms", res.Duration)
	}
	if s, c := ft.submitted.Load(), ft.completed.Load(); s != c {
		t.Errorf("%d submitted but %d completed: not drained", s, c)
	}
	_, writes, _ := totals(res)
	if writes != ft.completed.Load() {
		t.Errorf("result has %d writes, target completed %d", writes, ft.completed.Load())
	}
}

func TestStuckDeviceDrainTimesOut(t *testing.T) {
	ft := newFakeTarget("f", 1<<20, 512)
	ft.stuckAt = 300
	cfg := Config{Pattern: RandRead, IOSize: 512, QueueDepth: 8, Duration: 50 * time.Millisecond, DrainTimeout: 100 * time.Millisecond}
	begin := time.Now()
	res := run(t, cfg, ft)
	if el := time.Since(begin); el > 3*time.Second {
		t.Errorf("run took %v with a stuck device", el)
	}
	if res.Err == nil || !strings.Contains(res.Err.Error(), "8 I/Os never completed") {
		t.Fatalf("Err %v, want 8 I/Os never completed", res.Err)
	}
	if reads, _, _ := totals(res); reads != 300 {
		t.Errorf("%d reads, want the 300 completed", reads)
	}
}

func TestQueuePairsAndBufferOffset(t *testing.T) {
	ft := newFakeTarget("f", 1<<20, 512)
	cfg := Config{Pattern: RandRead, IOSize: 4096, QueueDepth: 10, QPairsPerTarget: 3, BufferAlign: 512,
		QueueSize: 64, MaxCompletions: 2, Doorbell: target.DoorbellEveryN, DoorbellN: 4, NumIOs: 300, Duration: 10 * time.Second}
	res := run(t, cfg, ft)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Jobs[0].QPairs != 3 || len(ft.queues) != 3 {
		t.Fatalf("QPairs %d, %d queues opened; want 3", res.Jobs[0].QPairs, len(ft.queues))
	}
	for i, q := range ft.queues {
		c := q.cfg
		if c.Depth != []int{4, 3, 3}[i] || c.Buffers != c.Depth || c.BufferOffset != 512 || c.QueueSize != 64 ||
			c.MaxCompletions != 2 || c.Doorbell != target.DoorbellEveryN || c.DoorbellN != 4 || c.IOSize != 4096 {
			t.Errorf("queue %d config %+v", i, c)
		}
		if !q.closed {
			t.Errorf("queue %d left open", i)
		}
	}
	for align, want := range map[int]int{0: 0, 4: 4, 2048: 2048, 4096: 0, 65536: 0} {
		cfg.BufferAlign = align
		if got := cfg.bufferOffset(); got != want {
			t.Errorf("BufferAlign %d: offset %d, want %d", align, got, want)
		}
	}
}

// TestProgressReportsPhases waits for conditions, not for time: each run ends (by
// cancelling) as soon as the reports it looks for arrived, with a generous deadline, so
// a loaded machine only makes it slower.
func TestProgressReportsPhases(t *testing.T) {
	collect := func(cfg Config, done func(Progress) bool) []Progress {
		t.Helper()
		ft := newFakeTarget("f", 1<<20, 512)
		ft.latency = 50 * time.Microsecond
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var mu sync.Mutex
		var got []Progress
		finished := false
		cfg.ProgressInterval = 10 * time.Millisecond
		cfg.Progress = func(p Progress) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, p)
			if !finished && done(p) {
				finished = true
				cancel()
			}
		}
		res := runCtx(t, ctx, cfg, ft)
		mu.Lock()
		defer mu.Unlock()
		if !finished {
			t.Fatalf("the reports looked for did not come within 60 s (%d reports, err %v)", len(got), res.Err)
		}
		return got
	}
	// Warm-up: reports say so, count I/Os and, once a window of MinRateWindow passed,
	// give a rate.
	got := collect(Config{Pattern: RandRead, IOSize: 512, QueueDepth: 4, Warmup: time.Hour, Duration: time.Hour},
		func(p Progress) bool { return p.IOPS > 0 })
	w := got[len(got)-1]
	if !w.Warmup || w.IOs == 0 || w.Bytes != 512*w.IOs || w.IOPS <= 0 || w.MiBps <= 0 || w.Remaining != max(0, time.Hour-w.Elapsed) {
		t.Errorf("warm-up report %+v", w)
	}
	for _, p := range got {
		if p.IOPS > 0 && p.Elapsed < MinRateWindow {
			t.Errorf("a rate %v after only %v of the phase", p.IOPS, p.Elapsed)
		}
	}
	// Measurement after a short warm-up: the first reports of the phase give no rate
	// until a window of MinRateWindow has passed, so never billions of IOPS.
	got = collect(Config{Pattern: RandRead, IOSize: 512, QueueDepth: 4, Warmup: time.Millisecond, Duration: time.Hour},
		func(p Progress) bool { return !p.Warmup && p.IOPS > 0 })
	m := got[len(got)-1]
	if m.Warmup || m.IOs == 0 || m.Elapsed <= 0 || m.Remaining != max(0, time.Hour-m.Elapsed) {
		t.Errorf("measure report %+v", m)
	}
	for _, p := range got {
		if !p.Warmup && p.IOPS > 0 && p.Elapsed < MinRateWindow {
			t.Errorf("measure report with a rate after %v: %+v", p.Elapsed, p)
		}
	}
}

// TestRateWindow: a rate needs a window of MinRateWindow; a window of microseconds
// (right after a phase change) gives none instead of billions of IOPS.
func TestRateWindow(t *testing.T) {
	var r rateWindow
	r.reset(0)
	if _, _, ok := r.sample(int64(5*time.Microsecond), 1000, 512000); ok {
		t.Error("a rate over a 5 µs window")
	}
	iops, mibps, ok := r.sample(int64(MinRateWindow), 1000, 1000<<20)
	if !ok || iops != 1000/MinRateWindow.Seconds() || mibps != 1000/MinRateWindow.Seconds() {
		t.Errorf("rate over %v: %v IOPS %v MiB/s ok %v", MinRateWindow, iops, mibps, ok)
	}
	if _, _, ok := r.sample(int64(MinRateWindow)+int64(time.Second), 10, 10); ok {
		t.Error("a rate from counters that went backwards")
	}
}

// TestIdleWorkerNeverSleeps: a worker whose I/Os are slow keeps polling. The old idle
// back-off slept (time.Sleep(20µs), in practice about 1.1 ms) on every empty iteration
// after 1 ms idle. Sleeping blocks the worker's locked thread: a voluntary context
// switch per iteration, which the kernel counts for the thread (RUSAGE_THREAD). Load
// on the machine only adds involuntary switches, so the count does not depend on it.
func TestIdleWorkerNeverSleeps(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ft := newFakeTarget("f", 1<<20, 512)
	ft.latency = time.Hour // nothing completes
	w := newTestWorker(t, Config{Pattern: RandRead, IOSize: 512, QueueDepth: 4, Duration: time.Hour}, ft)
	defer w.closeQueues()
	w.lastReap = w.run.clock() - int64(time.Second) // idle for a second already
	var before, after unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &before); err != nil {
		t.Skipf("RUSAGE_THREAD: %v", err)
	}
	const steps = 5000
	for i := 0; i < steps; i++ {
		if !w.step() {
			t.Fatal("worker finished with I/Os outstanding")
		}
	}
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &after); err != nil {
		t.Fatal(err)
	}
	// A garbage collection or the race detector may block the thread a few times.
	if blocked := after.Nvcsw - before.Nvcsw; blocked > steps/10 {
		t.Errorf("the worker's thread blocked %d times in %d idle iterations: it sleeps instead of polling", blocked, steps)
	}
}

// TestProgressShowsWorkerCPU: progress reports carry each worker thread's CPU share.
// The worker spins on its queue, so its thread shows CPU use; a share above 100% of
// one CPU (plus a tick of rounding) would mean the wrong thread was read. The run ends
// as soon as a report with CPU use arrived, within a generous deadline.
func TestProgressShowsWorkerCPU(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var loads []WorkerLoad
	cfg := Config{Pattern: RandRead, IOSize: 512, QueueDepth: 4, Duration: time.Hour, ProgressInterval: 200 * time.Millisecond,
		Progress: func(p Progress) {
			if len(p.Workers) != 1 {
				t.Errorf("report %+v: want one worker's load", p)
				cancel()
				return
			}
			loads = append(loads, p.Workers[0])
			if l := p.Workers[0]; l.UserPercent+l.SystemPercent > 0 {
				cancel()
			}
		}}
	runCtx(t, ctx, cfg, newFakeTarget("f", 1<<20, 512))
	busy := false
	for _, l := range loads {
		if l.Core != -1 || l.UserPercent < 0 || l.SystemPercent < 0 || l.UserPercent+l.SystemPercent > 110 {
			t.Errorf("worker load %+v", l)
		}
		busy = busy || l.UserPercent+l.SystemPercent > 0
	}
	if !busy {
		t.Errorf("no CPU use in %d reports for a spinning worker", len(loads))
	}
}

func TestStopDuringWarmupMeasuresNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	cfg := Config{Pattern: RandRead, IOSize: 512, QueueDepth: 4, Warmup: 10 * time.Second, Duration: time.Second}
	ft := newFakeTarget("f", 1<<20, 512)
	ft.latency = 10 * time.Microsecond
	res := runCtx(t, ctx, cfg, ft)
	reads, _, _ := totals(res)
	if !res.Interrupted || res.Duration != 0 || reads != 0 || ft.completed.Load() == 0 {
		t.Errorf("interrupted %v duration %v reads %d (target did %d)", res.Interrupted, res.Duration, reads, ft.completed.Load())
	}
}

// newTestWorker builds a started worker on one fake target outside Run, for the
// allocation test and the benchmark.
func newTestWorker(tb testing.TB, cfg Config, ft *fakeTarget) *worker {
	tb.Helper()
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	infos, err := checkTargets([]target.Target{ft}, &cfg)
	if err != nil {
		tb.Fatal(err)
	}
	rs := &runState{epoch: time.Now()}
	rs.phase.Store(phaseMeasure)
	w := newWorkers([]target.Target{ft}, infos, &cfg, rs)[0]
	if err := w.setup(); err != nil {
		tb.Fatal(err)
	}
	w.start()
	return w
}

func TestNoAllocationsPerIO(t *testing.T) {
	for _, p := range []Pattern{RandRW, RW} {
		cfg := Config{Pattern: p, ReadPercent: 50, IOSize: 4096, QueueDepth: 32, QPairsPerTarget: 2, Duration: time.Hour, ZipfTheta: 0}
		if p.Random() {
			cfg.ZipfTheta = 1.1
		}
		ft := newFakeTarget("f", 1<<30, 512)
		w := newTestWorker(t, cfg, ft)
		for i := 0; i < 100; i++ {
			w.step()
		}
		before := ft.completed.Load()
		allocs := testing.AllocsPerRun(1000, func() { w.step() })
		if ft.completed.Load()-before < 1000*32 {
			t.Fatalf("%v: only %d I/Os in 1000 iterations", p, ft.completed.Load()-before)
		}
		if allocs != 0 {
			t.Errorf("%v: %v allocations per loop iteration (32 I/Os each), want 0", p, allocs)
		}

		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		for i := 0; i < 3000; i++ {
			w.step()
		}
		runtime.ReadMemStats(&m1)
		// Mallocs counts the whole process (the test runner's goroutines too), so a
		// handful is noise; one per I/O would be 96000.
		if m1.NumGC != m0.NumGC || m1.Mallocs-m0.Mallocs > 10 {
			t.Errorf("%v: %d GCs and %d mallocs during 96000 I/Os", p, m1.NumGC-m0.NumGC, m1.Mallocs-m0.Mallocs)
		}
		w.closeQueues()
	}
}

// BenchmarkWorkerLoop measures the engine's own cost per I/O against a null target
// that completes everything on the next poll, at queue depth 128.
func BenchmarkWorkerLoop(b *testing.B) {
	ft := newFakeTarget("null", 1<<40, 512)
	cfg := Config{Pattern: RandRead, IOSize: 4096, QueueDepth: 128, Duration: time.Hour}
	w := newTestWorker(b, cfg, ft)
	defer w.closeQueues()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ReportAllocs()
	b.ResetTimer()
	start := ft.completed.Load()
	for ft.completed.Load()-start < uint64(b.N) {
		w.step()
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.NumGC-m0.NumGC), "GCs")
}

func TestStartGateHoldsTheClock(t *testing.T) {
	ft := newFakeTarget("f", 1<<20, 512)
	var openedBeforeGate bool
	var gateReturned time.Time
	cfg := Config{Pattern: RandRead, IOSize: 512, QueueDepth: 8, NumIOs: 1000,
		StartGate: func(ctx context.Context) error {
			// Queues are open (the fake counts opens) and no I/O has been sent.
			openedBeforeGate = ft.submitted.Load() == 0
			time.Sleep(200 * time.Millisecond)
			gateReturned = time.Now()
			return nil
		}}
	res := run(t, cfg, ft)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if !openedBeforeGate {
		t.Error("I/O was submitted before the start gate returned")
	}
	if res.Start.Before(gateReturned) {
		t.Errorf("measurement started at %v, before the gate returned at %v", res.Start, gateReturned)
	}
	if reads, _, _ := totals(res); reads != 1000 {
		t.Errorf("%d reads after the gate, want 1000", reads)
	}
}

func TestStartGateErrorRunsNothing(t *testing.T) {
	ft := newFakeTarget("f", 1<<20, 512)
	gateErr := errors.New("rank 2 never came")
	cfg := Config{Pattern: RandRead, IOSize: 512, QueueDepth: 8, Duration: time.Second,
		StartGate: func(context.Context) error { return gateErr }}
	res := run(t, cfg, ft)
	if !errors.Is(res.Err, gateErr) {
		t.Fatalf("Err = %v, want the gate's error", res.Err)
	}
	if n := ft.submitted.Load(); n != 0 {
		t.Errorf("%d I/Os submitted although the gate failed", n)
	}
}

// TestWorkerCPUExcludesWarmup: every worker reports its thread's CPU over the measured
// phase only. A thread cannot use more CPU than the wall time it ran, so its figure
// must not exceed the wall time from measure start to the end of the run; a spinning
// worker that counted its 500 ms warm-up would.
func TestWorkerCPUExcludesWarmup(t *testing.T) {
	cpus := allowedCPUs(t)
	cores := cpus[:min(2, len(cpus))]
	// A count, not a time, bounds the measured phase: on a loaded machine a worker may
	// get so little of a short window that the thread's CPU clock, kept in ticks, shows
	// nothing. 400 000 I/Os are tens of milliseconds of CPU however long they take.
	cfg := Config{Pattern: RandRead, IOSize: 512, QueueDepth: 8, Cores: cores,
		Warmup: 500 * time.Millisecond, NumIOs: 400_000, Duration: 2 * time.Minute}
	begin := time.Now()
	res := run(t, cfg, newFakeTarget("f", 1<<20, 512))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(res.Workers) != len(cores) {
		t.Fatalf("%d worker CPU entries, want %d", len(res.Workers), len(cores))
	}
	// Wall time from the start of measurement to now bounds each thread's measured CPU.
	sinceMeasure := time.Since(begin) - cfg.Warmup
	var ios uint64
	for i, w := range res.Workers {
		if w.Core != cores[i] {
			t.Errorf("worker %d: core %d, want %d", i, w.Core, cores[i])
		}
		used := w.User + w.System
		if used <= 0 {
			t.Errorf("worker %d: no CPU time counted for a busy loop", i)
		}
		if used > sinceMeasure+20*time.Millisecond { // getrusage rounds to ticks
			t.Errorf("worker %d: %v CPU in %v of measured wall time: warm-up counted", i, used, sinceMeasure)
		}
		if w.IOs == 0 || w.NSPerIO() <= 0 {
			t.Errorf("worker %d: %d I/Os, %v ns per I/O", i, w.IOs, w.NSPerIO())
		}
		ios += w.IOs
	}
	reads, writes, errs := totals(res)
	if ios != reads+writes+errs {
		t.Errorf("workers count %d I/Os, jobs %d", ios, reads+writes+errs)
	}
	for i, j := range res.Jobs {
		if j.Worker < 0 || j.Worker >= len(res.Workers) || res.Workers[j.Worker].Core != j.Core {
			t.Errorf("job %d: worker %d does not match its core %d", i, j.Worker, j.Core)
		}
	}
	tot := res.TotalCPU()
	if tot.IOs != ios || tot.User+tot.System <= 0 {
		t.Errorf("total CPU %+v", tot)
	}
}

// The end of warm-up is decided once: the first of a worker past the instant and the
// coordinator's timer sets where measurement starts, and later calls change nothing.
func TestBeginMeasureOnce(t *testing.T) {
	rs := &runState{epoch: time.Now(), warmupEnd: int64(50 * time.Millisecond)}
	if rs.phase.Load() != phaseWarmup {
		t.Fatal("run does not start in warm-up")
	}
	if !rs.beginMeasure(rs.warmupEnd) {
		t.Fatal("first beginMeasure refused")
	}
	if rs.beginMeasure(rs.warmupEnd+int64(time.Second)) || rs.measureStart.Load() != rs.warmupEnd || rs.phase.Load() != phaseMeasure {
		t.Fatalf("measure start %d, phase %d: a later call moved it", rs.measureStart.Load(), rs.phase.Load())
	}
}

// With MeasureAt, measurement begins at that instant, not before it, and a run whose
// clock starts after it measures nothing and says it was late.
func TestMeasureAt(t *testing.T) {
	ft := newFakeTarget("f", 1<<20, 512)
	at := time.Now().Add(300 * time.Millisecond)
	res := run(t, Config{Pattern: RandRead, IOSize: 512, QueueDepth: 8, Duration: 200 * time.Millisecond, MeasureAt: at}, ft)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Start.Before(at) {
		t.Errorf("measurement started at %v, before MeasureAt %v", res.Start, at)
	}
	if reads, _, _ := totals(res); reads == 0 || uint64(reads) >= ft.completed.Load() {
		t.Errorf("%d measured reads of %d completed: no warm-up before the instant", reads, ft.completed.Load())
	}

	ft = newFakeTarget("g", 1<<20, 512)
	res = run(t, Config{Pattern: RandRead, IOSize: 512, QueueDepth: 8, Duration: time.Second, MeasureAt: time.Now().Add(-time.Second)}, ft)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "after the instant") || ft.submitted.Load() != 0 {
		t.Errorf("past MeasureAt: err %v, %d I/Os submitted", res.Err, ft.submitted.Load())
	}
}
