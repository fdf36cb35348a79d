package workload

import (
	"testing"
	"time"
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
