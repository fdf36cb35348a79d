package workload

import (
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// The worker loop over the real driver on the simulator's inline mode — workload,
// queue pair, PRPs, doorbell, device model, completion, latency record, all on this
// thread — allocates nothing per I/O.
func TestNoAllocationsPerIOOnInlineSim(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Inline = true
	cfg.Store = sim.StoreDiscard
	dev, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	c, err := nvme.Attach(dev.Registers(), dev.Allocator(), nvme.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Detach()
	ns := c.Namespace(1)
	tgt := nvme.NewTarget(ns, target.Info{Name: "sim", Transport: "sim", NSID: 1, LBASize: ns.SectorSize(), Capacity: ns.Capacity()}, nil)

	wcfg := Config{Pattern: RandRW, ReadPercent: 50, IOSize: 4096, QueueDepth: 32, Duration: time.Hour}
	if err := wcfg.Validate(); err != nil {
		t.Fatal(err)
	}
	infos, err := checkTargets([]target.Target{tgt}, &wcfg)
	if err != nil {
		t.Fatal(err)
	}
	rs := &runState{epoch: time.Now()}
	rs.phase.Store(phaseMeasure)
	w := newWorkers([]target.Target{tgt}, infos, &wcfg, rs)[0]
	if err := w.setup(); err != nil {
		t.Fatal(err)
	}
	w.start()
	defer w.closeQueues()
	for range 100 {
		w.step()
	}
	before := dev.Stats().Completions
	allocs := testing.AllocsPerRun(1000, func() { w.step() })
	if done := dev.Stats().Completions - before; done < 1000 {
		t.Fatalf("only %d I/Os in 1000 loop iterations", done)
	}
	if allocs != 0 {
		t.Errorf("%v allocations per loop iteration, want 0", allocs)
	}
	if v := dev.Violations(); v.Total != 0 {
		t.Errorf("%d spec violations; last: %s", v.Total, v.Last)
	}
}
