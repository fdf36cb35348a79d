package nvme_test

import (
	"bytes"
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// These tests hold the driver to what real controllers expose and the simulator's
// defaults hide: large queues, memory pages above 4 KiB, doorbell strides, 32-bit-only
// registers, shutdown latency and teardown order. newSim fails a test whose run
// commits any spec violation the simulator can see.

// qpairRoundTrip writes random data of each size at each buffer offset and reads it back,
// comparing byte for byte.
func qpairRoundTrip(t *testing.T, dev *sim.Controller, c *nvme.Controller, q *nvme.QPair, sizes, offsets []int) {
	t.Helper()
	ns := c.Namespace(1)
	maxSize := 0
	for _, s := range sizes {
		maxSize = max(maxSize, s)
	}
	wbuf, err := dev.Allocator().Alloc(maxSize + 16384)
	if err != nil {
		t.Fatal(err)
	}
	rbuf, err := dev.Allocator().Alloc(maxSize + 16384)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(9))
	lba := uint64(0)
	for _, size := range sizes {
		for _, off := range offsets {
			w, r := wbuf.Slice(off, size), rbuf.Slice(off, size)
			rng.Read(w.Bytes)
			clear(r.Bytes)
			nlb := uint32(size) / ns.SectorSize()
			var cmd spec.Command
			ns.WriteCommand(&cmd, lba, nlb)
			if st := do(t, q, &cmd, w); !st.OK() {
				t.Fatalf("write of %d bytes at buffer offset %d: %v", size, off, st)
			}
			ns.ReadCommand(&cmd, lba, nlb)
			if st := do(t, q, &cmd, r); !st.OK() {
				t.Fatalf("read of %d bytes at buffer offset %d: %v", size, off, st)
			}
			if !bytes.Equal(w.Bytes, r.Bytes) {
				t.Fatalf("%d bytes at buffer offset %d read back different", size, off)
			}
			lba += uint64(nlb)
		}
	}
}

// newSimParallel is newSim for parallel tests: it skips newSim's hook, which shares a
// map between tests.
func newSimParallel(t *testing.T, mod func(*sim.Config)) (*sim.Controller, *nvme.Controller) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.NamespaceSize = 1 << 20
	mod(&cfg)
	dev, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	c, err := nvme.Attach(dev.Registers(), dev.Allocator(), nvme.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Detach()
		if v := dev.Violations(); v.Total != 0 {
			t.Errorf("spec violations %v; last: %s", v.Counts, v.Last)
		}
	})
	return dev, c
}

// MQES = 65535 means queues of 65536 entries; a 16-bit size once made that 0 and hung.
// The test pushes more than 65536 commands through, so both rings wrap.
func TestSim65536EntryQueue(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.MQES = 65535; cfg.Store = sim.StoreDiscard })
	if c.MaxQueueEntries() != 65536 {
		t.Fatalf("MaxQueueEntries %d, want 65536", c.MaxQueueEntries())
	}
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 65536, Requests: 256})
	if err != nil {
		t.Fatal(err)
	}
	if q.Entries() != 65536 {
		t.Fatalf("Entries %d, want 65536", q.Entries())
	}
	buf, err := dev.Allocator().Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	const total = 65536 + 5000
	cb := &countCB{}
	var cmd spec.Command
	c.Namespace(1).ReadCommand(&cmd, 0, 1)
	submitted := 0
	deadline := time.Now().Add(60 * time.Second)
	for cb.n < total {
		for submitted < total && q.Outstanding() < 256 {
			if err := q.Submit(&cmd, buf.Slice(0, 512), cb, nil); err != nil {
				t.Fatal(err)
			}
			submitted++
		}
		if _, err := q.Poll(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d commands completed in 60 s", cb.n, total)
		}
	}
	if cb.bad != 0 {
		t.Fatalf("%d commands failed", cb.bad)
	}
	if st := q.Stats(); st.SpuriousCIDs != 0 || st.BadSQHeads != 0 {
		t.Errorf("spurious %d, bad SQ heads %d", st.SpuriousCIDs, st.BadSQHeads)
	}
}

// CAP.MPSMIN = 1: the controller's memory page is 8 KiB. CC.MPS, queue alignment and
// every PRP (pages after the first start on 8 KiB boundaries, list pages hold 1024
// entries) must follow it; the simulator walks PRPs with the page the host chose.
func TestSimMemoryPage8K(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.MPSMIN = 1; cfg.MDTS = 8; cfg.NamespaceSize = 64 << 20 })
	if c.PageSize() != 8192 {
		t.Fatalf("PageSize %d, want 8192 for MPSMIN 1", c.PageSize())
	}
	if cc := spec.CC(dev.Registers().Read32(spec.RegCC)); cc.MPS() != 1 {
		t.Fatalf("CC.MPS %d, want 1", cc.MPS())
	}
	if c.MaxTransfer() != 8192<<8 {
		t.Fatalf("MaxTransfer %d, want MDTS in 8 KiB units: %d", c.MaxTransfer(), 8192<<8)
	}
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer c.FreeIOQPair(q)
	qpairRoundTrip(t, dev, c, q,
		[]int{512, 4096, 8192, 8192 + 512, 16384, 3 * 8192, 64 << 10, c.MaxTransfer()},
		[]int{0, 4, 4096, 8192 - 512})
}

// CAP.DSTRD = 2: doorbells are 16 bytes apart. Queues other than the first only work if
// every doorbell offset follows the stride.
func TestSimDoorbellStride(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.DSTRD = 2 })
	if c.CAP().DSTRD() != 2 {
		t.Fatalf("CAP %v, want DSTRD 2", c.CAP())
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
		qpairRoundTrip(t, dev, c, q, []int{4096, 3 * 4096}, []int{0, 512})
	}
}

// With regs32 the simulator counts any register access wider than 32 bits: the driver
// reads CAP and writes ASQ/ACQ as two dwords, low first.
func TestSimRegisters32BitOnly(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.Regs32 = true; cfg.Strict = true })
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 8})
	if err != nil {
		t.Fatal(err)
	}
	qpairRoundTrip(t, dev, c, q, []int{4096}, []int{0})
	if err := c.FreeIOQPair(q); err != nil {
		t.Fatal(err)
	}
	if err := c.Detach(); err != nil {
		t.Fatal(err)
	}
	if v := dev.Violations(); v.Total != 0 {
		t.Fatalf("violations %v: %s", v.Counts, v.Last)
	}
}

// Shutdown waits as long as Identify RTD3E says, clamped to [5 s, 60 s] as Linux does,
// instead of a fixed time.
func TestSimShutdownTimeoutFromRTD3E(t *testing.T) {
	for _, tc := range []struct {
		rtd3e time.Duration
		want  time.Duration
	}{{0, 5 * time.Second}, {time.Second, 5 * time.Second}, {8 * time.Second, 8 * time.Second}, {2 * time.Minute, time.Minute}} {
		_, c := newSim(t, func(cfg *sim.Config) { cfg.RTD3E = uint32(tc.rtd3e / time.Microsecond) })
		if got := c.ShutdownTimeout(); got != tc.want {
			t.Errorf("RTD3E %v: shutdown timeout %v, want %v", tc.rtd3e, got, tc.want)
		}
	}
	t.Run("slow shutdown within RTD3E", func(t *testing.T) {
		t.Parallel()
		// 6 s is past the 5 s floor: only a wait that follows RTD3E (8 s) sees it through.
		dev, c := newSimParallel(t, func(cfg *sim.Config) { cfg.RTD3E = 8_000_000; cfg.ShutdownDelay = 6 * time.Second })
		start := time.Now()
		if err := c.Detach(); err != nil {
			t.Fatalf("Detach: %v", err)
		}
		if took := time.Since(start); took < 6*time.Second {
			t.Fatalf("Detach returned after %v, before the 6 s shutdown finished", took)
		}
		if shst := spec.CSTS(dev.Registers().Read32(spec.RegCSTS)).SHST(); shst != spec.ShutdownStatusComplete {
			t.Fatalf("SHST %d after Detach, want complete", shst)
		}
	})
	t.Run("shutdown beyond RTD3E", func(t *testing.T) {
		t.Parallel()
		_, c := newSimParallel(t, func(cfg *sim.Config) { cfg.ShutdownDelay = time.Minute })
		start := time.Now()
		err := c.Detach()
		took := time.Since(start)
		if !errors.Is(err, nvme.ErrTimeout) || !strings.Contains(err.Error(), "5s") {
			t.Fatalf("Detach of a controller that takes 1 min to shut down: %v", err)
		}
		if took < 5*time.Second || took > 30*time.Second {
			t.Errorf("gave up after %v; no RTD3E means 5 s", took)
		}
	})
}

// After a controller failure the driver must disable it before freeing the memory its
// queues live in: the simulator counts any Free of a live queue of an enabled
// controller. Freeing queue pairs and detaching after a fatal status frees everything
// in order.
func TestSimTeardownOrderAfterFailure(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.Strict = true })
	ns := c.Namespace(1)
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 16})
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := dev.Allocator().Alloc(4096)
	var cmd spec.Command
	ns.ReadCommand(&cmd, 0, 1)
	if st := do(t, q, &cmd, buf.Slice(0, 512)); !st.OK() {
		t.Fatal(st)
	}
	dev.Faults().SetFatal()
	deadline := time.Now().Add(10 * time.Second)
	for c.Err() == nil {
		// The queue pair looks at CSTS after a while without completions.
		if err := q.Submit(&cmd, buf.Slice(0, 512), &countCB{}, nil); err != nil {
			break
		}
		for c.Err() == nil && q.Outstanding() > 0 && time.Now().Before(deadline) {
			q.Poll()
		}
		if time.Now().After(deadline) {
			t.Fatal("the controller's fatal status went unnoticed for 10 s")
		}
	}
	if err := c.FreeIOQPair(q); err != nil {
		t.Logf("FreeIOQPair on a failed controller: %v", err)
	}
	if v := dev.Violations(); v.Total != 0 {
		t.Fatalf("freeing a queue pair of a failed controller: %v (%s)", v.Counts, v.Last)
	}
	if err := c.Detach(); err != nil {
		t.Logf("Detach of a failed controller: %v", err)
	}
	if cc := spec.CC(dev.Registers().Read32(spec.RegCC)); cc.EN() {
		t.Fatalf("Detach left a failed controller enabled: %v", cc)
	}
	if v := dev.Violations(); v.Total != 0 {
		t.Fatalf("teardown after failure: %v (%s)", v.Counts, v.Last)
	}
}

// The teardown check itself: freeing memory that holds a live queue is refused and
// counted.
func TestSimCountsFreeOfLiveQueue(t *testing.T) {
	dev, err := sim.New(func() sim.Config {
		cfg := sim.DefaultConfig()
		cfg.NamespaceSize = 1 << 20
		return cfg
	}())
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	c, err := nvme.Attach(dev.Registers(), dev.Allocator(), nvme.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Detach()
	mem, err := dev.Allocator().Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	create := spec.Command{CDW10: 9 | 15<<16, CDW11: spec.QueuePhysicallyContiguous, PRP1: mem.Addr}
	create.SetOpcodeCID(uint8(spec.AdminCreateIOCQ), 0)
	if _, err := c.AdminCommand(&create, bus.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := dev.Allocator().Free(mem); err == nil {
		t.Fatal("Free of a live CQ's memory succeeded")
	}
	v := dev.Violations()
	if v.Counts[sim.ViolationTeardown] != 1 || v.Total != 1 || !strings.Contains(v.Last, "live queue") {
		t.Fatalf("violations %v (%q), want one teardown violation", v.Counts, v.Last)
	}
	del := spec.Command{CDW10: 9}
	del.SetOpcodeCID(uint8(spec.AdminDeleteIOCQ), 0)
	if _, err := c.AdminCommand(&del, bus.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := dev.Allocator().Free(mem); err != nil {
		t.Fatalf("Free after deleting the queue: %v", err)
	}
}
