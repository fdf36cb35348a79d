package nvme_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// These tests run the driver against the simulated controller: the same register and
// DMA seams real PCIe uses, with a device that walks PRPs by address and keeps data.

func newSim(t testing.TB, mod func(*sim.Config)) (*sim.Controller, *nvme.Controller) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.NamespaceSize = 64 << 20
	cfg.LBASize = 512
	cfg.Store = sim.StoreMemory
	if mod != nil {
		mod(&cfg)
	}
	dev, c := attachSim(t, cfg, nvme.Options{})
	if newSimHook != nil {
		newSimHook(c, dev)
	}
	return dev, c
}

// waiter collects one completion.
type waiter struct {
	done bool
	cpl  spec.Completion
}

func (w *waiter) CommandDone(_ any, cpl *spec.Completion) { w.done, w.cpl = true, *cpl }

// do submits one command and polls until it completes (bounded).
func do(t testing.TB, q *nvme.QPair, cmd *spec.Command, data bus.Buffer) spec.Status {
	t.Helper()
	var w waiter
	if err := q.Submit(cmd, data, &w, nil); err != nil {
		t.Fatalf("submit: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !w.done {
		if _, err := q.Poll(); err != nil {
			t.Fatalf("poll: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("command did not complete in 5 s")
		}
	}
	return w.cpl.StatusField()
}

func TestSimIdentify(t *testing.T) {
	_, c := newSim(t, func(cfg *sim.Config) { cfg.Namespaces = 3; cfg.IOQueues = 8; cfg.MQES = 255; cfg.MDTS = 6 })
	id := c.Identify()
	if !strings.Contains(id.Model(), "nvmeperf simulated") || id.Serial() == "" || id.Firmware() == "" {
		t.Errorf("identity %q %q %q", id.Model(), id.Serial(), id.Firmware())
	}
	if c.IOQueues() != 8 || c.MaxQueueEntries() != 256 || c.MaxTransfer() != 256<<10 {
		t.Errorf("queues %d entries %d max transfer %d", c.IOQueues(), c.MaxQueueEntries(), c.MaxTransfer())
	}
	if len(c.Namespaces()) != 3 {
		t.Fatalf("%d namespaces", len(c.Namespaces()))
	}
	for _, ns := range c.Namespaces() {
		if ns.SectorSize() != 512 || ns.Capacity() != 64<<20 {
			t.Errorf("NSID %d: %d × %d", ns.ID(), ns.Sectors(), ns.SectorSize())
		}
	}
	log, err := c.SMART()
	if err != nil {
		t.Fatal(err)
	}
	if log.Temperature == [2]byte{} {
		t.Error("SMART log has no temperature")
	}
}

// TestSimEveryPRPShape writes random data through every PRP shape — one page, two
// pages, a list, a chained list — with page-aligned and dword-aligned buffers, and
// reads it back byte for byte.
func TestSimEveryPRPShape(t *testing.T) {
	const mdts = 12 // 16 MiB: a chained PRP list needs over 2 MiB
	_, c := newSim(t, func(cfg *sim.Config) { cfg.MDTS = mdts; cfg.NamespaceSize = 32 << 20 })
	ns := c.Namespace(1)
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer c.FreeIOQPair(q)
	maxXfer := c.MaxTransfer()
	dma := allocator(t, c)
	wbuf, err := dma.Alloc(maxXfer + 8192)
	if err != nil {
		t.Fatal(err)
	}
	rbuf, err := dma.Alloc(maxXfer + 8192)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	sizes := []int{512, 1024, 4096 - 512, 4096, 4096 + 512, 8192, 12288, 64 << 10, 128 << 10,
		2 << 20, 2<<20 + 4096, 4 << 20, maxXfer}
	offsets := []int{0, 4, 512, 2048, 4092}
	lba := uint64(0)
	for _, size := range sizes {
		for _, off := range offsets {
			t.Run(fmt.Sprintf("%dB_at_+%d", size, off), func(t *testing.T) {
				w := wbuf.Slice(off, size)
				r := rbuf.Slice(off, size)
				rng.Read(w.Bytes)
				clear(r.Bytes)
				nlb := uint32(size / 512)
				start := lba % (ns.Sectors() - uint64(nlb))
				var cmd spec.Command
				ns.WriteCommand(&cmd, start, nlb)
				if st := do(t, q, &cmd, w); !st.OK() {
					t.Fatalf("write: %v", st)
				}
				ns.ReadCommand(&cmd, start, nlb)
				if st := do(t, q, &cmd, r); !st.OK() {
					t.Fatalf("read: %v", st)
				}
				if !bytes.Equal(w.Bytes, r.Bytes) {
					i := 0
					for i < size && w.Bytes[i] == r.Bytes[i] {
						i++
					}
					t.Fatalf("data differs at byte %d of %d", i, size)
				}
			})
			lba += uint64(size/512) + 7
		}
	}
	// Misaligned buffers are refused before anything reaches the device.
	var cmd spec.Command
	ns.ReadCommand(&cmd, 0, 1)
	if err := q.Submit(&cmd, rbuf.Slice(2, 512), &waiter{}, nil); err == nil || !strings.Contains(err.Error(), "dword") {
		t.Errorf("misaligned buffer: %v", err)
	}
}

func allocator(t testing.TB, c *nvme.Controller) bus.Allocator {
	t.Helper()
	a, ok := simAllocators[c]
	if !ok {
		t.Fatal("no allocator recorded")
	}
	return a
}

var simAllocators = map[*nvme.Controller]bus.Allocator{}

func init() {
	newSimHook = func(c *nvme.Controller, dev *sim.Controller) { simAllocators[c] = dev.Allocator() }
}

var newSimHook func(*nvme.Controller, *sim.Controller)

// TestSimErrorsAreDecoded checks that each spec error the simulator returns reaches
// the caller as a readable error.
func TestSimErrorsAreDecoded(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.MQES = 63; cfg.MDTS = 1; cfg.IOQueues = 2 })
	ns := c.Namespace(1)
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 8})
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := dev.Allocator().Alloc(64 << 10)
	ioErr := func(cmd *spec.Command, data bus.Buffer) string {
		st := do(t, q, cmd, data)
		if st.OK() {
			t.Fatalf("command %v succeeded", cmd.Opcode())
		}
		return nvme.StatusErrorFor(false, cmd, st).Error()
	}
	var cmd spec.Command
	ns.ReadCommand(&cmd, ns.Sectors()-1, 2)
	if got := ioErr(&cmd, buf.Slice(0, 1024)); !strings.Contains(got, "LBA out of range") || !strings.Contains(got, "LBA 131071") {
		t.Errorf("out of range: %s", got)
	}
	ns.ReadCommand(&cmd, 0, 1)
	cmd.NSID = 9
	if got := ioErr(&cmd, buf.Slice(0, 512)); !strings.Contains(got, "invalid namespace or format") {
		t.Errorf("bad NSID: %s", got)
	}
	cmd = spec.Command{NSID: 1}
	cmd.SetOpcodeCID(0x7E, 0)
	if got := ioErr(&cmd, bus.Buffer{}); !strings.Contains(got, "invalid command opcode") {
		t.Errorf("bad opcode: %s", got)
	}
	// Beyond MDTS (8 KiB): the driver refuses before submitting.
	ns.ReadCommand(&cmd, 0, 32)
	if err := q.Submit(&cmd, buf.Slice(0, 16<<10), &waiter{}, nil); err == nil || !strings.Contains(err.Error(), "MDTS") {
		t.Errorf("over MDTS: %v", err)
	}
	// Injected media error.
	dev.Faults().FailLBARange(1, 100, 10, spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCUnrecoveredReadError))
	ns.ReadCommand(&cmd, 105, 1)
	if got := ioErr(&cmd, buf.Slice(0, 512)); !strings.Contains(got, "unrecovered read error (sct 2, sc 0x81)") {
		t.Errorf("media error: %s", got)
	}
	dev.Faults().Clear()
	// Admin errors: a queue larger than MQES+1 and more queues than granted.
	if _, err := c.NewIOQPair(nvme.QPairOptions{}); err != nil {
		t.Fatalf("second queue pair: %v", err)
	}
	_, err = c.NewIOQPair(nvme.QPairOptions{})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("third queue pair on a 2-queue controller: %v", err)
	}
	create := spec.Command{CDW10: 1 | 200<<16, CDW11: 1, PRP1: buf.Addr}
	create.SetOpcodeCID(uint8(spec.AdminCreateIOCQ), 0)
	_, err = c.AdminCommand(&create, bus.Buffer{})
	var se *nvme.StatusError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "Create I/O CQ failed") {
		t.Errorf("create CQ on a used qid: %v", err)
	}
}

func TestSimNeverReadyTimesOut(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.NamespaceSize = 1 << 20
	cfg.Timeout = 1 // CAP.TO: 500 ms
	dev, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	dev.Faults().SetNeverReady(true)
	start := time.Now()
	_, err = nvme.Attach(dev.Registers(), dev.Allocator(), nvme.Options{})
	took := time.Since(start)
	if !errors.Is(err, nvme.ErrTimeout) || !strings.Contains(err.Error(), "CSTS.RDY") {
		t.Fatalf("attach with RDY never set: %v", err)
	}
	if took < 450*time.Millisecond || took > 3*time.Second {
		t.Errorf("gave up after %v; CAP.TO says 500 ms", took)
	}
}

func TestSimPhaseWrapAndSoftwareQueue(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.MQES = 3 }) // 4-entry queues
	ns := c.Namespace(1)
	buf, err := dev.Allocator().Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.NewIOQPair(nvme.QPairOptions{Requests: 64})
	if err != nil {
		t.Fatal(err)
	}
	if q.Entries() != 4 {
		t.Fatalf("entries %d, want clamped to 4", q.Entries())
	}
	cb := &countCB{}
	var cmd spec.Command
	total := 0
	deadline := time.Now().Add(10 * time.Second)
	for cb.n < 4000 && time.Now().Before(deadline) {
		for total < 4000 && q.Outstanding() < 64 {
			ns.ReadCommand(&cmd, uint64(total%1000), 1)
			if err := q.Submit(&cmd, buf.Slice(0, 512), cb, nil); err != nil {
				t.Fatal(err)
			}
			total++
		}
		if _, err := q.Poll(); err != nil {
			t.Fatal(err)
		}
	}
	if cb.n != 4000 || cb.bad != 0 {
		t.Fatalf("completed %d (bad %d) of 4000 through a 4-entry queue", cb.n, cb.bad)
	}
	if q.Stats().SoftQueued == 0 {
		t.Error("nothing waited in the software queue")
	}
}

type countCB struct{ n, bad int }

func (c *countCB) CommandDone(_ any, cpl *spec.Completion) {
	c.n++
	if !cpl.StatusField().OK() {
		c.bad++
	}
}

// BenchmarkQPairRoundTripSim measures submit+complete against the simulator's null
// model, whose device thread runs on another core: cross-core traffic included.
func BenchmarkQPairRoundTripSim(b *testing.B) {
	dev, c := newSim(b, func(cfg *sim.Config) { cfg.Store = sim.StoreDiscard; cfg.LBASize = 4096 })
	buf, err := dev.Allocator().Alloc(4096)
	if err != nil {
		b.Fatal(err)
	}
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 256, Requests: 128})
	if err != nil {
		b.Fatal(err)
	}
	ns := c.Namespace(1)
	var cmd spec.Command
	ns.ReadCommand(&cmd, 0, 1)
	cb := &countCB{}
	b.ReportAllocs()
	b.ResetTimer()
	submitted := 0
	for cb.n < b.N {
		for submitted < b.N && q.Outstanding() < 128 {
			if err := q.Submit(&cmd, buf, cb, nil); err != nil {
				b.Fatal(err)
			}
			submitted++
		}
		if _, err := q.Poll(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSimFlushWriteZeroesDeallocate(t *testing.T) {
	dev, c := newSim(t, nil)
	ns := c.Namespace(1)
	if !ns.SupportsWriteZeroes() || !ns.SupportsDeallocate() {
		t.Fatalf("sim does not advertise write zeroes / DSM (ONCS %#x)", c.Identify().ONCS)
	}
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 8})
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := dev.Allocator().Alloc(8192)
	write := func(lba uint64) {
		for i := range buf.Bytes[:4096] {
			buf.Bytes[i] = 0xA5
		}
		var cmd spec.Command
		ns.WriteCommand(&cmd, lba, 8)
		if st := do(t, q, &cmd, buf.Slice(0, 4096)); !st.OK() {
			t.Fatalf("write: %v", st)
		}
	}
	readZero := func(lba uint64) bool {
		for i := range buf.Bytes[:4096] {
			buf.Bytes[i] = 0xFF
		}
		var cmd spec.Command
		ns.ReadCommand(&cmd, lba, 8)
		if st := do(t, q, &cmd, buf.Slice(0, 4096)); !st.OK() {
			t.Fatalf("read: %v", st)
		}
		return bytes.Equal(buf.Bytes[:4096], make([]byte, 4096))
	}
	write(100)
	if readZero(100) {
		t.Fatal("written blocks read as zeros")
	}
	var cmd spec.Command
	ns.WriteZeroesCommand(&cmd, 100, 8, false)
	if st := do(t, q, &cmd, bus.Buffer{}); !st.OK() || !readZero(100) {
		t.Fatalf("write zeroes: %v", st)
	}
	write(200)
	ranges, err := nvme.PutDSMRanges(buf.Slice(4096, 4096), []spec.DSMRange{{NLB: 8, SLBA: 200}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.DeallocateCommand(&cmd, 1); err != nil {
		t.Fatal(err)
	}
	if st := do(t, q, &cmd, ranges); !st.OK() || !readZero(200) {
		t.Fatalf("deallocate: %v", st)
	}
	ns.FlushCommand(&cmd)
	if st := do(t, q, &cmd, bus.Buffer{}); !st.OK() {
		t.Fatalf("flush: %v", st)
	}
	if err := ns.DeallocateCommand(&cmd, 0); err == nil {
		t.Error("a DSM with no ranges was accepted")
	}
}

// TestSimSurpriseRemoval pulls the simulated device mid-run: its BAR becomes
// inaccessible, as a hot-removed PCIe device's does. The queue pair must report the
// failure and end every outstanding command instead of killing the process, and
// teardown must not crash either.
func TestSimSurpriseRemoval(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.Model = sim.ModelNAND })
	ns := c.Namespace(1)
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 64})
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := dev.Allocator().Alloc(32 * 4096)
	cb := &countCB{}
	var cmd spec.Command
	submitted := 0
	submit := func() {
		for q.Outstanding() < 32 {
			ns.ReadCommand(&cmd, uint64(submitted%1000)*8, 8)
			if err := q.Submit(&cmd, buf.Slice((submitted%32)*4096, 4096), cb, nil); err != nil {
				return
			}
			submitted++
		}
	}
	start := time.Now()
	removed := false
	var perr error
	for perr == nil && time.Since(start) < 10*time.Second {
		submit()
		if !removed && cb.n > 500 {
			if err := dev.Remove(); err != nil {
				t.Fatal(err)
			}
			removed = true
		}
		_, perr = q.Poll()
	}
	if !removed {
		t.Fatal("too few completions before the removal")
	}
	if !errors.Is(perr, nvme.ErrFailed) || !strings.Contains(perr.Error(), "faulted") {
		t.Fatalf("Poll after removal: %v", perr)
	}
	if q.Outstanding() != 0 || cb.n != submitted || cb.bad == 0 {
		t.Fatalf("outstanding %d, completed %d of %d (%d failed): every command must end", q.Outstanding(), cb.n, submitted, cb.bad)
	}
	if err := c.Detach(); err == nil {
		t.Log("detach of a removed controller reported no error")
	}
	if _, err := c.AdminCommand(&cmd, bus.Buffer{}); !errors.Is(err, nvme.ErrFailed) {
		t.Errorf("admin command after removal: %v", err)
	}
}

// attachSim starts a simulator with cfg and attaches the driver with opts; at the end
// (cleanups run last first: after Detach) it fails the test if the driver broke a spec
// rule the simulator can see.
func attachSim(t testing.TB, cfg sim.Config, opts nvme.Options) (*sim.Controller, *nvme.Controller) {
	t.Helper()
	dev, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	t.Cleanup(func() {
		if v := dev.Violations(); v.Total != 0 {
			t.Errorf("the driver committed %d spec violations (%v); last: %s", v.Total, v.Counts, v.Last)
		}
	})
	c, err := nvme.Attach(dev.Registers(), dev.Allocator(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Detach() })
	return dev, c
}
