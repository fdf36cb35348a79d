package nvme_test

import (
	"fmt"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// shadowSim attaches to a simulator offering shadow doorbells (shadowdb:1).
func shadowSim(t *testing.T, opts nvme.Options, mod func(*sim.Config)) (*sim.Controller, *nvme.Controller) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.NamespaceSize = 16 << 20
	cfg.LBASize = 512
	cfg.Store = sim.StoreMemory
	cfg.ShadowDoorbell = true
	if mod != nil {
		mod(&cfg)
	}
	dev, c := attachSim(t, cfg, opts)
	return dev, c
}

// checkShadowCounts checks the counters' bookkeeping: every shadow update either rang
// its register or was skipped.
func checkShadowCounts(t *testing.T, s nvme.QPairStats) {
	t.Helper()
	if s.SQShadowUpdates == 0 || s.CQShadowUpdates == 0 {
		t.Fatalf("no shadow doorbell updates: %+v", s)
	}
	if s.SQDoorbells+s.CQDoorbells+s.ShadowSkips != s.SQShadowUpdates+s.CQShadowUpdates {
		t.Errorf("register writes %d + %d and skips %d do not add up to shadow updates %d + %d",
			s.SQDoorbells, s.CQDoorbells, s.ShadowSkips, s.SQShadowUpdates, s.CQShadowUpdates)
	}
}

// Data written and read back through I/O queues on shadow doorbells is the same, with
// any doorbell stride; the CQ head register is written only when the device's EventIdx
// asks (the simulator, like QEMU without ioeventfd, reads the shadow head instead), so
// far fewer CQ doorbell writes than commands.
func TestSimShadowDoorbellRoundTrip(t *testing.T) {
	for _, dstrd := range []uint8{0, 2} {
		t.Run(fmt.Sprintf("dstrd%d", dstrd), func(t *testing.T) {
			dev, c := shadowSim(t, nvme.Options{}, func(cfg *sim.Config) { cfg.DSTRD = dstrd })
			if !c.ShadowDoorbells() {
				t.Fatal("the controller offers shadow doorbells (OACS bit 8) but they are not in use")
			}
			var qs []*nvme.QPair
			for i := 0; i < 3; i++ {
				q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 8})
				if err != nil {
					t.Fatal(err)
				}
				defer c.FreeIOQPair(q)
				qs = append(qs, q)
			}
			for _, q := range qs {
				qpairRoundTrip(t, dev, c, q, []int{512, 4096, 3 * 4096, 64 << 10}, []int{0, 512})
				s := q.Stats()
				checkShadowCounts(t, s)
				// 16 commands, each polled alone: one CQ head update each; an 8-entry CQ
				// wraps twice, and only a wrap passes the EventIdx the device left at 0.
				if s.CQShadowUpdates != s.Completed || s.CQDoorbells > 3 {
					t.Errorf("CQ head: %d shadow updates, %d register writes for %d commands; want one update per command and at most 3 writes",
						s.CQShadowUpdates, s.CQDoorbells, s.Completed)
				}
				if s.SQDoorbells+s.CQDoorbells >= s.Completed+s.Completed/2 {
					t.Errorf("%d doorbell register writes for %d commands", s.SQDoorbells+s.CQDoorbells, s.Completed)
				}
			}
		})
	}
}

// While the device is not looking at an SQ its EventIdx stays put, so the host updates
// the shadow tail without ringing; the device then finds every command in the shadow.
func TestSimShadowDoorbellSkipsWhileDeviceBusy(t *testing.T) {
	dev, c := shadowSim(t, nvme.Options{}, nil)
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 32, Doorbell: target.DoorbellPerCommand})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := dev.Allocator().Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	dev.Faults().SetFrozen(true)
	const n = 8
	var cb countingCB
	for i := 0; i < n; i++ {
		cmd := readCmd(uint64(i))
		if err := q.Submit(&cmd, buf.Slice(0, 512), &cb, nil); err != nil {
			t.Fatal(err)
		}
	}
	s := q.Stats()
	// Each Submit updates the shadow tail. A device pass already under way when the
	// freeze came may publish one more EventIdx, so at most two of them ring.
	if s.SQShadowUpdates != n || s.SQDoorbells > 2 || s.ShadowSkips < n-2 {
		t.Fatalf("%d commands into a frozen device: %d shadow updates, %d SQ doorbell writes, %d skips; want %d, at most 2, at least %d",
			n, s.SQShadowUpdates, s.SQDoorbells, s.ShadowSkips, n, n-2)
	}
	dev.Faults().SetFrozen(false)
	if err := pollUntil(t, q, "the commands completing", func() bool { return cb.ok+cb.failed == n }); err != nil {
		t.Fatal(err)
	}
	if cb.ok != n {
		t.Fatalf("%+v, want %d successful", cb, n)
	}
	checkShadowCounts(t, q.Stats())
}

// --no-shadow-doorbell (Options.NoShadowDoorbell) keeps the queues on their registers,
// and a controller that does not offer the feature is never sent the command.
func TestSimShadowDoorbellOff(t *testing.T) {
	cases := []struct {
		name  string
		opts  nvme.Options
		offer bool
	}{
		{"disabled", nvme.Options{NoShadowDoorbell: true}, true},
		{"not offered", nvme.Options{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dev, c := shadowSim(t, tc.opts, func(cfg *sim.Config) { cfg.ShadowDoorbell = tc.offer })
			if c.ShadowDoorbells() {
				t.Fatal("shadow doorbells in use")
			}
			q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 8})
			if err != nil {
				t.Fatal(err)
			}
			defer c.FreeIOQPair(q)
			qpairRoundTrip(t, dev, c, q, []int{4096}, []int{0, 512})
			s := q.Stats()
			if s.SQShadowUpdates+s.CQShadowUpdates+s.ShadowSkips != 0 {
				t.Errorf("shadow counters moved: %+v", s)
			}
			if s.SQDoorbells < s.Completed || s.CQDoorbells < s.Completed {
				t.Errorf("%d SQ and %d CQ doorbell writes for %d commands polled one by one", s.SQDoorbells, s.CQDoorbells, s.Completed)
			}
		})
	}
}

// A reset makes the controller forget the buffers: recovery sends Doorbell Buffer Config
// again and the re-created queues start from clean slots. Without that the device would
// read stale CQ heads from the registers the host no longer writes and stall.
func TestSimShadowDoorbellAfterReset(t *testing.T) {
	dev, c := shadowSim(t, nvme.Options{Recovery: nvme.RecoveryOptions{Recover: true, MaxResets: 2}}, nil)
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 16})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := dev.Allocator().Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	resetLosingOneRead(t, dev, c, q, buf)
	before := q.Stats()
	for i := 0; i < 100; i++ { // several laps of the 16-entry rings
		if st := do(t, q, ptr(readCmd(uint64(i))), buf.Slice(0, 512)); !st.OK() {
			t.Fatalf("command %d after the reset: %v", i, st)
		}
	}
	after := q.Stats()
	if after.CQShadowUpdates-before.CQShadowUpdates < 100 || after.CQDoorbells-before.CQDoorbells > 10 {
		t.Errorf("after the reset: %d CQ shadow updates and %d CQ doorbell writes for 100 commands",
			after.CQShadowUpdates-before.CQShadowUpdates, after.CQDoorbells-before.CQDoorbells)
	}
}

// The I/O path allocates nothing with shadow doorbells either.
func TestSimShadowDoorbellAllocatesNothing(t *testing.T) {
	dev, c := shadowSim(t, nvme.Options{}, nil)
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 64, Doorbell: target.DoorbellPerCommand})
	if err != nil {
		t.Fatal(err)
	}
	checkRoundTripAllocsNothing(t, dev, q, "with shadow doorbells")
	checkShadowCounts(t, q.Stats())
}
