package nvme_test

import (
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// cmbSim attaches to a simulator with a controller memory buffer of cmb bytes
// (cmb:SIZE). attachSim fails the test on any spec violation, CMB misuse included.
func cmbSim(t *testing.T, cmb uint64, opts nvme.Options, mod func(*sim.Config)) (*sim.Controller, *nvme.Controller) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.NamespaceSize = 16 << 20
	cfg.LBASize = 512
	cfg.Store = sim.StoreMemory
	cfg.CMB = cmb
	if mod != nil {
		mod(&cfg)
	}
	return attachSim(t, cfg, opts)
}

// With a CMB that holds SQs, every I/O SQ is created in it (the simulator counts the
// queues whose base address it decoded as CMB) and data written and read back through
// them is the same: in threaded and inline mode, with and without shadow doorbells.
func TestSimCMBQueuesRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*sim.Config)
	}{
		{"thread", nil},
		{"inline", func(c *sim.Config) { c.Inline = true }},
		{"shadowdb", func(c *sim.Config) { c.ShadowDoorbell = true }},
		{"dstrd2-8k-pages", func(c *sim.Config) { c.DSTRD, c.MPSMIN = 2, 1 }},
		// NVMe 1.3: no CAP.CMBS, no CMBMSC to write, the CMB 4 KiB into its BAR.
		{"legacy", func(c *sim.Config) { c.CMBLegacy = true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dev, c := cmbSim(t, 1<<20, nvme.Options{}, tc.mod)
			if info := c.CMB(); !info.SQs || info.Size != 1<<20 {
				t.Fatalf("CMB %+v: want 1 MiB holding the SQs", info)
			}
			var qs []*nvme.QPair
			for i := 0; i < 3; i++ {
				q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 16})
				if err != nil {
					t.Fatal(err)
				}
				defer c.FreeIOQPair(q)
				if !q.SQInCMB() {
					t.Fatalf("queue pair %d: SQ in host memory (%s)", q.ID(), q.CMBFallback())
				}
				qs = append(qs, q)
			}
			if n := dev.Stats().CMBSQs; n != 3 {
				t.Fatalf("the simulator decoded %d SQs as CMB, want 3", n)
			}
			for _, q := range qs {
				// 16 commands on a 16-entry ring: it wraps, so every slot is rewritten.
				qpairRoundTrip(t, dev, c, q, []int{512, 4096, 3 * 4096, 64 << 10}, []int{0, 512})
			}
			if tc.name == "shadowdb" {
				if !c.ShadowDoorbells() {
					t.Fatal("shadow doorbells not in use")
				}
				checkShadowCounts(t, qs[0].Stats())
			}
		})
	}
}

// -D (Options.NoSQInCMB) keeps the SQs in host memory, and so does a controller without
// a CMB; the reason is kept.
func TestSimCMBDisabledOrAbsent(t *testing.T) {
	cases := []struct {
		name   string
		cmb    uint64
		opts   nvme.Options
		reason string
	}{
		{"disabled", 1 << 20, nvme.Options{NoSQInCMB: true}, "disabled"},
		{"absent", 0, nvme.Options{}, "no controller memory buffer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dev, c := cmbSim(t, tc.cmb, tc.opts, nil)
			info := c.CMB()
			if info.SQs || !strings.Contains(info.Reason, tc.reason) {
				t.Fatalf("CMB %+v: want SQs off because %q", info, tc.reason)
			}
			q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 16})
			if err != nil {
				t.Fatal(err)
			}
			defer c.FreeIOQPair(q)
			if q.SQInCMB() {
				t.Fatal("SQ in the CMB")
			}
			qpairRoundTrip(t, dev, c, q, []int{4096}, []int{0})
			if n := dev.Stats().CMBSQs; n != 0 {
				t.Fatalf("the simulator decoded %d SQs as CMB", n)
			}
		})
	}
}

// SQs that no longer fit stay in host memory with the reason; a freed SQ's space is
// used again.
func TestSimCMBFullFallsBack(t *testing.T) {
	dev, c := cmbSim(t, 8192, nvme.Options{}, nil)
	open := func() *nvme.QPair {
		q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 64}) // 4 KiB of SQ
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	a, b, full := open(), open(), open()
	if !a.SQInCMB() || !b.SQInCMB() {
		t.Fatal("the first two 4 KiB SQs are not in the 8 KiB CMB")
	}
	if full.SQInCMB() || !strings.Contains(full.CMBFallback(), "no room") {
		t.Fatalf("third SQ: in CMB %t, reason %q", full.SQInCMB(), full.CMBFallback())
	}
	qpairRoundTrip(t, dev, c, full, []int{4096}, []int{0})
	if err := c.FreeIOQPair(a); err != nil {
		t.Fatal(err)
	}
	again := open()
	if !again.SQInCMB() {
		t.Fatalf("SQ after a CMB SQ was freed: in host memory (%s)", again.CMBFallback())
	}
	qpairRoundTrip(t, dev, c, again, []int{4096}, []int{0})
	for _, q := range []*nvme.QPair{b, full, again} {
		if err := c.FreeIOQPair(q); err != nil {
			t.Fatal(err)
		}
	}
}

// A reset may clear CMBMSC; recovery enables the CMB again before the queues are
// re-created in it, with shadow doorbells on as well, so I/O goes on in the CMB. A
// legacy (NVMe 1.3) CMB has no CMBMSC: recovery writes none and the queues go back in.
func TestSimCMBAfterReset(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "nvme1.4", true: "legacy"}[legacy], func(t *testing.T) {
			testSimCMBAfterReset(t, legacy)
		})
	}
}

func testSimCMBAfterReset(t *testing.T, legacy bool) {
	dev, c := cmbSim(t, 1<<20, nvme.Options{Recovery: nvme.RecoveryOptions{Recover: true, MaxResets: 2}},
		func(cfg *sim.Config) { cfg.ShadowDoorbell, cfg.CMBLegacy = true, legacy })
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 16})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := dev.Allocator().Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	resetLosingOneRead(t, dev, c, q, buf)
	if !q.SQInCMB() {
		t.Fatal("the re-created SQ is not in the CMB")
	}
	for i := 0; i < 100; i++ {
		if st := do(t, q, ptr(readCmd(uint64(i))), buf.Slice(0, 512)); !st.OK() {
			t.Fatalf("command %d after the reset: %v", i, st)
		}
	}
	if n := dev.Stats().CMBSQs; n != 2 {
		t.Fatalf("the simulator decoded %d SQ creations as CMB, want 2 (before and after the reset)", n)
	}
	if err := c.FreeIOQPair(q); err != nil {
		t.Fatal(err)
	}
}

// The I/O path allocates nothing with the SQ in the CMB.
func TestSimCMBAllocatesNothing(t *testing.T) {
	dev, c := cmbSim(t, 1<<20, nvme.Options{}, nil)
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 64, Doorbell: target.DoorbellPerCommand})
	if err != nil {
		t.Fatal(err)
	}
	defer c.FreeIOQPair(q)
	if !q.SQInCMB() {
		t.Fatal("SQ not in the CMB")
	}
	checkRoundTripAllocsNothing(t, dev, q, "with the SQ in the CMB")
}

// BenchmarkCMBSubmitInline measures submit+complete with the SQ in host memory and in
// the CMB against the inline simulator (one thread, no cross-core noise), so the cost
// of the MMIO-safe entry copy shows against the plain struct copy.
func BenchmarkCMBSubmitInline(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts nvme.Options
	}{{"host", nvme.Options{NoSQInCMB: true}}, {"cmb", nvme.Options{}}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := sim.DefaultConfig()
			cfg.Inline, cfg.Store, cfg.CMB = true, sim.StoreDiscard, 1<<20
			dev, c := attachSim(b, cfg, tc.opts)
			q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 256, Requests: 128})
			if err != nil {
				b.Fatal(err)
			}
			if q.SQInCMB() == tc.opts.NoSQInCMB {
				b.Fatalf("SQ in CMB %t", q.SQInCMB())
			}
			buf, err := dev.Allocator().Alloc(4096)
			if err != nil {
				b.Fatal(err)
			}
			cmd := readCmd(0)
			cb := &countCB{}
			b.ReportAllocs()
			b.ResetTimer()
			submitted := 0
			for cb.n < b.N {
				for submitted < b.N && q.Outstanding() < 32 {
					if err := q.Submit(&cmd, buf.Slice(0, 4096), cb, nil); err != nil {
						b.Fatal(err)
					}
					submitted++
				}
				if _, err := q.Poll(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
