package workload

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMoreQueuePairsThanDepthRotates checks spdk_nvme_perf -q 1 -P 2: each I/O goes to
// the next queue pair in turn, so both pairs carry I/O and never more than the depth is
// in flight.
func TestMoreQueuePairsThanDepthRotates(t *testing.T) {
	ft := newFakeTarget("f", 1<<20, 512)
	ft.record = true
	cfg := Config{Pattern: RandRead, IOSize: 4096, QueueDepth: 1, QPairsPerTarget: 2, NumIOs: 100, Duration: 10 * time.Second}
	res := run(t, cfg, ft)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	ops := ft.ops()
	if len(ops) != 2 {
		t.Fatalf("%d queues opened, want 2", len(ops))
	}
	if a, b := len(ops[0]), len(ops[1]); a < 45 || b < 45 || a+b < 100 {
		t.Errorf("submissions per pair %d and %d, want them alternating over 100 I/Os", a, b)
	}
	if reads, _, _ := totals(res); reads != 100 {
		t.Errorf("%d reads, want 100", reads)
	}
}

// TestEveryCoreGivesEveryWorkerEveryTarget checks --use-every-core's assignment.
func TestEveryCoreGivesEveryWorkerEveryTarget(t *testing.T) {
	as := assignEveryCore(2, 3)
	if len(as) != 6 {
		t.Fatalf("%d assignments, want 6", len(as))
	}
	seen := map[assignment]bool{}
	for _, a := range as {
		seen[a] = true
	}
	for w := 0; w < 2; w++ {
		for tg := 0; tg < 3; tg++ {
			if !seen[assignment{w, tg}] {
				t.Errorf("worker %d does not drive target %d", w, tg)
			}
		}
	}
}

// TestPinnedThreadsDoNotLeak checks that a run's pinned worker threads do not go back
// to the runtime's pool still pinned: afterwards every thread may use every CPU.
func TestPinnedThreadsDoNotLeak(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil || all.Count() < 2 {
		t.Skip("needs two or more CPUs in the affinity set")
	}
	first := -1
	for c := 0; c < 1024 && first < 0; c++ {
		if all.IsSet(c) {
			first = c
		}
	}
	ft := newFakeTarget("f", 1<<20, 512)
	cfg := Config{Pattern: RandRead, IOSize: 4096, QueueDepth: 2, Cores: []int{first}, NumIOs: 50, Duration: 10 * time.Second}
	if res := run(t, cfg, ft); res.Err != nil {
		t.Fatal(res.Err)
	}
	var wg sync.WaitGroup
	pinned := make(chan int, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var s unix.CPUSet
			if err := unix.SchedGetaffinity(0, &s); err == nil && s.Count() != all.Count() {
				pinned <- s.Count()
			}
		}()
	}
	wg.Wait()
	close(pinned)
	if n, ok := <-pinned; ok {
		t.Errorf("a thread left pinned to %d CPU(s) after the run (want %d)", n, all.Count())
	}
}
