package nvme

import (
	"encoding/binary"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

func TestAttachIdentifiesController(t *testing.T) {
	d := newFakeDev(255)
	d.nn = 2
	c := attachFake(t, d)
	if got := c.Identify().Model(); got != "fake controller" {
		t.Errorf("model %q", got)
	}
	if c.MaxTransfer() != 128<<10 {
		t.Errorf("MaxTransfer %d, want 128 KiB from MDTS 5", c.MaxTransfer())
	}
	if c.IOQueues() != 4 {
		t.Errorf("IOQueues %d, want the 4 the controller granted", c.IOQueues())
	}
	if n := len(c.Namespaces()); n != 2 || c.Namespace(2) == nil || c.Namespace(3) != nil {
		t.Fatalf("namespaces: %d", n)
	}
	ns := c.Namespace(1)
	if ns.SectorSize() != 512 || ns.Sectors() != 1<<20 || ns.Capacity() != 512<<20 {
		t.Errorf("namespace geometry %d × %d", ns.Sectors(), ns.SectorSize())
	}
	if cc := spec.CC(d.regs[spec.RegCC]); !cc.EN() || cc.IOSQES() != 6 || cc.IOCQES() != 4 || cc.MPS() != 0 {
		t.Errorf("CC after bring-up: %v", cc)
	}
	if aqa := spec.AQA(d.regs[spec.RegAQA]); aqa.ASQS() != 32 || aqa.ACQS() != 32 {
		t.Errorf("AQA %v", aqa)
	}
	if err := c.Detach(); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if spec.CC(d.regs[spec.RegCC]).SHN() != spec.CCShutdownNormal {
		t.Errorf("Detach did not request a normal shutdown")
	}
}

func TestAttachFailures(t *testing.T) {
	cases := []struct {
		name string
		set  func(d *fakeDev)
		want string
		is   error
	}{
		{"never ready", func(d *fakeDev) { d.neverReady = true }, "CSTS.RDY stayed false", ErrTimeout},
		{"fatal on enable", func(d *fakeDev) { d.fatalOnEn = true }, "controller fatal status", ErrFailed},
		{"page size", func(d *fakeDev) { d.cap = spec.MakeCAP(63, true, 1, 0, 1, 5, 5) }, "pages of 4 KiB to 64 KiB", nil},
		{"no NVM command set", func(d *fakeDev) { d.cap = spec.MakeCAP(63, true, 1, 0, 0x40, 0, 0) }, "NVM command set", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDev(63)
			tc.set(d)
			start := time.Now()
			_, err := Attach(d, d, Options{ReadyTimeout: 30 * time.Millisecond})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if time.Since(start) > 2*time.Second {
				t.Errorf("failure took %v", time.Since(start))
			}
		})
	}
}

func TestAttachHonoursCAPTimeout(t *testing.T) {
	d := newFakeDev(63) // CAP.TO = 1: 500 ms
	d.neverReady = true
	c := &Controller{regs: d, dma: d}
	c.cap = d.cap
	if got := c.readyTimeout(); got != 500*time.Millisecond {
		t.Fatalf("ready timeout %v, want CAP.TO × 500 ms", got)
	}
}

func TestShutdownTimeout(t *testing.T) {
	d := newFakeDev(63)
	c := attachFake(t, d)
	d.noShutdown = true
	c.opts.ShutdownTimeout = 20 * time.Millisecond
	err := c.Detach()
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "SHST") {
		t.Fatalf("Detach with a controller that never finishes shutdown: %v", err)
	}
}

// counter is a Callback that records completions.
type counter struct {
	n      int
	bad    int
	status []spec.Status
	order  []int
	resub  func()
}

func (c *counter) CommandDone(arg any, cpl *spec.Completion) {
	c.n++
	if st := cpl.StatusField(); !st.OK() {
		c.bad++
		c.status = append(c.status, st)
	}
	if i, ok := arg.(int); ok {
		c.order = append(c.order, i)
	}
	if c.resub != nil {
		c.resub()
	}
}

func readCmd(ns *Namespace, lba uint64) *spec.Command {
	var cmd spec.Command
	ns.ReadCommand(&cmd, lba, 1)
	return &cmd
}

func TestQueueCreateAndLimits(t *testing.T) {
	d := newFakeDev(63)
	c := attachFake(t, d)
	defer c.Detach()
	q, err := c.NewIOQPair(QPairOptions{Entries: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if q.Entries() != 64 {
		t.Errorf("entries %d, want clamped to MQES+1 = 64", q.Entries())
	}
	var qs []*QPair
	for i := 0; i < 3; i++ {
		q, err := c.NewIOQPair(QPairOptions{})
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q)
	}
	if _, err := c.NewIOQPair(QPairOptions{}); err == nil || !strings.Contains(err.Error(), "all 4 I/O queue pairs") {
		t.Fatalf("fifth queue pair: %v", err)
	}
	if err := c.FreeIOQPair(qs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewIOQPair(QPairOptions{}); err != nil {
		t.Fatalf("queue after freeing one: %v", err)
	}
	if err := c.FreeIOQPair(qs[0]); err == nil {
		t.Error("freeing a queue pair twice succeeded")
	}
	if _, err := qs[0].Poll(); err == nil {
		t.Error("Poll on a freed queue pair succeeded")
	}
}

func TestPhaseWrapsOverManyLaps(t *testing.T) {
	d := newFakeDev(63)
	c := attachFake(t, d)
	defer c.Detach()
	q, err := c.NewIOQPair(QPairOptions{Entries: 4})
	if err != nil {
		t.Fatal(err)
	}
	ns := c.Namespace(1)
	var cb counter
	const total = 4 * 250 // 250 laps of a 4-entry queue
	submitted := 0
	for cb.n < total {
		for submitted < total && q.Outstanding() < q.Capacity() {
			if err := q.Submit(readCmd(ns, uint64(submitted)), bus.Buffer{}, &cb, submitted); err != nil {
				t.Fatal(err)
			}
			submitted++
		}
		if _, err := q.Poll(); err != nil {
			t.Fatal(err)
		}
	}
	if cb.bad != 0 || q.Outstanding() != 0 {
		t.Fatalf("bad %d outstanding %d", cb.bad, q.Outstanding())
	}
	for i, v := range cb.order {
		if v != i {
			t.Fatalf("completion %d carried arg %d", i, v)
		}
	}
	if q.Stats().SpuriousCIDs != 0 {
		t.Errorf("spurious completions: %d", q.Stats().SpuriousCIDs)
	}
}

func TestSoftwareQueueWhenSQFull(t *testing.T) {
	d := newFakeDev(63)
	c := attachFake(t, d)
	defer c.Detach()
	q, err := c.NewIOQPair(QPairOptions{Entries: 8, Requests: 40})
	if err != nil {
		t.Fatal(err)
	}
	ns := c.Namespace(1)
	var cb counter
	d.hold = true
	for i := 0; i < 40; i++ {
		if err := q.Submit(readCmd(ns, uint64(i)), bus.Buffer{}, &cb, i); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	if err := q.Submit(readCmd(ns, 99), bus.Buffer{}, &cb, 99); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("submit beyond Requests: %v", err)
	}
	if _, err := q.Poll(); err != nil {
		t.Fatal(err)
	}
	if d.ioCount != 7 {
		t.Fatalf("device saw %d commands, want 7 (SQ of 8 holds 7)", d.ioCount)
	}
	if q.Stats().SoftQueued != 33 {
		t.Errorf("soft queued %d, want 33", q.Stats().SoftQueued)
	}
	for cb.n < 40 {
		d.release() // completes held commands out of order
		d.mu.Lock()
		d.hold = true
		d.mu.Unlock()
		if _, err := q.Poll(); err != nil {
			t.Fatal(err)
		}
	}
	if d.ioCount != 40 || cb.bad != 0 || q.Outstanding() != 0 {
		t.Fatalf("io %d bad %d outstanding %d", d.ioCount, cb.bad, q.Outstanding())
	}
}

func TestDoorbellPolicies(t *testing.T) {
	cases := []struct {
		mode      target.DoorbellMode
		n         int
		wantRings int
	}{
		{target.DoorbellPerPoll, 0, 1},
		{target.DoorbellEveryN, 8, 4},
		{target.DoorbellPerCommand, 0, 32},
	}
	for _, tc := range cases {
		t.Run(tc.mode.String(), func(t *testing.T) {
			d := newFakeDev(255)
			c := attachFake(t, d)
			defer c.Detach()
			q, err := c.NewIOQPair(QPairOptions{Entries: 64, Doorbell: tc.mode, DoorbellN: tc.n})
			if err != nil {
				t.Fatal(err)
			}
			ns := c.Namespace(1)
			var cb counter
			before := q.Stats().SQDoorbells
			for i := 0; i < 32; i++ {
				if err := q.Submit(readCmd(ns, 0), bus.Buffer{}, &cb, nil); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := q.Poll(); err != nil { // rings for per-poll
				t.Fatal(err)
			}
			if got := int(q.Stats().SQDoorbells - before); got != tc.wantRings {
				t.Errorf("SQ doorbells %d, want %d", got, tc.wantRings)
			}
			for cb.n < 32 {
				if _, err := q.Poll(); err != nil {
					t.Fatal(err)
				}
			}
			if q.Stats().CQDoorbells < 1 || q.Stats().CQDoorbells > 2 {
				t.Errorf("CQ doorbells %d for one batch", q.Stats().CQDoorbells)
			}
		})
	}
}

func TestMaxCompletionsPerPoll(t *testing.T) {
	d := newFakeDev(255)
	c := attachFake(t, d)
	defer c.Detach()
	q, err := c.NewIOQPair(QPairOptions{Entries: 64, MaxCompletions: 5})
	if err != nil {
		t.Fatal(err)
	}
	var cb counter
	for i := 0; i < 20; i++ {
		if err := q.Submit(readCmd(c.Namespace(1), 0), bus.Buffer{}, &cb, nil); err != nil {
			t.Fatal(err)
		}
	}
	q.Poll() // rings; device completes all 20 at once
	for i := 0; i < 4; i++ {
		n, err := q.Poll()
		if err != nil || n != 5 {
			t.Fatalf("poll %d reaped %d (%v), want 5", i, n, err)
		}
	}
}

func TestStatusErrorsAreReadable(t *testing.T) {
	d := newFakeDev(63)
	c := attachFake(t, d)
	defer c.Detach()
	d.ioStatus = func(cmd *spec.Command) spec.Status {
		return spec.MakeStatus(spec.SCTGeneric, spec.SCLBAOutOfRange).WithDNR()
	}
	tg := NewTarget(c.Namespace(1), target.Info{Name: "fake"}, nil)
	h := &reqRecorder{}
	qi, err := tg.OpenQueue(target.QueueConfig{Depth: 4, IOSize: 4096, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	defer qi.Close()
	r := &target.Request{Op: target.OpRead, Offset: 8192, Length: 4096}
	if err := qi.Submit(r); err != nil {
		t.Fatal(err)
	}
	for h.n == 0 {
		if _, err := qi.Poll(); err != nil {
			t.Fatal(err)
		}
	}
	var se *StatusError
	if !errors.As(r.Err, &se) || se.Status.SC() != spec.SCLBAOutOfRange {
		t.Fatalf("request error %v", r.Err)
	}
	want := "nvme: Read of 8 blocks at LBA 16 (NSID 1) failed: LBA out of range (sct 0, sc 0x80) [do not retry]"
	if r.Err.Error() != want {
		t.Errorf("error text\n got %q\nwant %q", r.Err.Error(), want)
	}
	// Admin errors name the admin command.
	bad := spec.Command{}
	bad.SetOpcodeCID(0x7F, 0)
	if _, err := c.AdminCommand(&bad, bus.Buffer{}); err == nil || !strings.Contains(err.Error(), "invalid command opcode") {
		t.Errorf("admin error %v", err)
	}
}

type reqRecorder struct{ n int }

func (h *reqRecorder) Complete(r *target.Request) { h.n++ }

func TestControllerFailureCompletesOutstanding(t *testing.T) {
	d := newFakeDev(255)
	c := attachFake(t, d)
	q, err := c.NewIOQPair(QPairOptions{Entries: 64})
	if err != nil {
		t.Fatal(err)
	}
	d.hold = true
	var cb counter
	for i := 0; i < 10; i++ {
		if err := q.Submit(readCmd(c.Namespace(1), 0), bus.Buffer{}, &cb, nil); err != nil {
			t.Fatal(err)
		}
	}
	q.Poll()
	d.mu.Lock()
	d.regs[spec.RegCSTS] |= uint32(spec.CSTSFatal)
	d.mu.Unlock()
	var perr error
	start := time.Now()
	for perr == nil && time.Since(start) < 5*time.Second {
		_, perr = q.Poll()
	}
	if waited := time.Since(start); waited < healthCheckInterval || waited > 2*time.Second {
		t.Errorf("failure noticed after %v, want about %v of silence", waited, healthCheckInterval)
	}
	if !errors.Is(perr, ErrFailed) || !strings.Contains(perr.Error(), "fatal") {
		t.Fatalf("Poll after CFS: %v", perr)
	}
	if cb.n != 10 || cb.bad != 10 || q.Outstanding() != 0 {
		t.Fatalf("completed %d (bad %d), outstanding %d: every outstanding command must end", cb.n, cb.bad, q.Outstanding())
	}
	if err := q.Submit(readCmd(c.Namespace(1), 0), bus.Buffer{}, &cb, nil); !errors.Is(err, ErrFailed) {
		t.Errorf("Submit after failure: %v", err)
	}
	if err := c.Detach(); err != nil {
		t.Logf("Detach of a failed controller: %v", err)
	}
}

func TestPRPShapes(t *testing.T) {
	listMem := make([]byte, 3*pageSize)
	list := bus.Buffer{Bytes: listMem, Addr: 0xA000_0000}
	base := uint64(0x1000_0000)
	cases := []struct {
		name      string
		addr      uint64
		n         int
		prp2      uint64
		listPages []uint64 // expected list entries, in order (chain pointers excluded)
		wantErr   string
	}{
		{"one page", base, 4096, 0, nil, ""},
		{"512 bytes", base + 512, 512, 0, nil, ""},
		{"unaligned within one page", base + 4, 4092, 0, nil, ""},
		{"two pages", base, 8192, base + 4096, nil, ""},
		{"unaligned spilling into second page", base + 100, 4096, base + 4096, nil, ""},
		{"three pages uses a list", base, 12288, list.Addr, []uint64{base + 4096, base + 8192}, ""},
		{"unaligned 8 KiB needs a list", base + 8, 8192, list.Addr, []uint64{base + 4096, base + 8192}, ""},
		{"misaligned", base + 2, 512, 0, nil, "not dword aligned"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clear(listMem)
			var cmd spec.Command
			err := buildPRPs(&cmd, bus.Buffer{Bytes: make([]byte, tc.n), Addr: tc.addr}, list, pageSize)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cmd.PRP1 != tc.addr || cmd.PRP2 != tc.prp2 {
				t.Fatalf("PRP1 %#x PRP2 %#x", cmd.PRP1, cmd.PRP2)
			}
			for i, want := range tc.listPages {
				if got := binary.LittleEndian.Uint64(listMem[8*i:]); got != want {
					t.Errorf("list[%d] = %#x, want %#x", i, got, want)
				}
			}
		})
	}
}

func TestPRPListChaining(t *testing.T) {
	// 600 pages after the first: the first list page holds 511 entries and a chain
	// pointer in its last slot; the second page holds the remaining 89.
	n := 601 * pageSize
	pages := prpListPages(n, pageSize)
	if pages != 2 {
		t.Fatalf("prpListPages(%d) = %d, want 2", n, pages)
	}
	listMem := make([]byte, pages*pageSize)
	list := bus.Buffer{Bytes: listMem, Addr: 0xB000_0000}
	base := uint64(0x2000_0000)
	var cmd spec.Command
	if err := buildPRPs(&cmd, bus.Buffer{Bytes: make([]byte, n), Addr: base}, list, pageSize); err != nil {
		t.Fatal(err)
	}
	entry := func(page, slot int) uint64 {
		return binary.LittleEndian.Uint64(listMem[page*pageSize+slot*8:])
	}
	if entry(0, 0) != base+4096 || entry(0, 510) != base+511*4096 {
		t.Errorf("first list page entries %#x .. %#x", entry(0, 0), entry(0, 510))
	}
	if entry(0, 511) != list.Addr+pageSize {
		t.Errorf("chain pointer %#x, want %#x", entry(0, 511), list.Addr+pageSize)
	}
	if entry(1, 0) != base+512*4096 || entry(1, 88) != base+600*4096 || entry(1, 89) != 0 {
		t.Errorf("second list page entries %#x .. %#x, then %#x", entry(1, 0), entry(1, 88), entry(1, 89))
	}
	// 512 pages of data need at most 512 entries: one list page, no chain. One more
	// page, and the worst case needs a chain.
	if got := prpListPages(512*pageSize, pageSize); got != 1 {
		t.Errorf("prpListPages(512 pages) = %d, want 1", got)
	}
	if got := prpListPages(513*pageSize, pageSize); got != 2 {
		t.Errorf("prpListPages(513 pages) = %d, want 2", got)
	}
	if got := prpListPages(2*pageSize, pageSize); got != 1 || prpListPages(pageSize+4, pageSize) != 0 {
		t.Errorf("prpListPages(8 KiB) = %d, want 1 (unaligned start spans 3 pages)", got)
	}
}

func TestSubmitAndPollDoNotAllocate(t *testing.T) {
	d := newFakeDev(1023)
	c := attachFake(t, d)
	defer c.Detach()
	h := &resubmitter{}
	tg := NewTarget(c.Namespace(1), target.Info{}, nil)
	qi, err := tg.OpenQueue(target.QueueConfig{Depth: 32, IOSize: 4096, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	defer qi.Close()
	h.q = qi
	reqs := make([]target.Request, 32)
	for i := range reqs {
		reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(i) * 4096, Length: 4096, Buf: i}
		if err := qi.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := qi.Poll(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Poll with resubmission allocates %.1f times per call", allocs)
	}
	if h.n < 1000 {
		t.Fatalf("only %d I/Os completed", h.n)
	}
}

// resubmitter resubmits each completed request at once, like a benchmark worker.
type resubmitter struct {
	q target.Queue
	n int
}

func (h *resubmitter) Complete(r *target.Request) {
	h.n++
	if r.Err != nil {
		panic(r.Err)
	}
	if err := h.q.Submit(r); err != nil {
		panic(err)
	}
}

// BenchmarkQPairRoundTrip measures one submit + complete through a queue pair on the
// driver path (the fake controller completes inline on the doorbell write, so no
// cross-core traffic is counted). ns/op is per I/O, cpu-ns/op the process's CPU per I/O
// (the fake's share included), steadier than ns/op on a shared machine.
func BenchmarkQPairRoundTrip(b *testing.B) {
	for _, mode := range []target.DoorbellMode{target.DoorbellPerPoll, target.DoorbellPerCommand} {
		b.Run("doorbell="+mode.String(), func(b *testing.B) {
			d := newFakeDev(1023)
			c := attachFake(b, d)
			defer c.Detach()
			q, err := c.NewIOQPair(QPairOptions{Entries: 256, Requests: 128, Doorbell: mode})
			if err != nil {
				b.Fatal(err)
			}
			ns := c.Namespace(1)
			var cmd spec.Command
			ns.ReadCommand(&cmd, 0, 8)
			cb := &benchCB{}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			submitted := 0
			for cb.n < b.N {
				for submitted < b.N && q.Outstanding() < 128 {
					if err := q.Submit(&cmd, bus.Buffer{}, cb, nil); err != nil {
						b.Fatal(err)
					}
					submitted++
				}
				if _, err := q.Poll(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

type benchCB struct{ n int }

func (c *benchCB) CommandDone(any, *spec.Completion) { c.n++ }

// processCPU is the process's user plus system CPU time so far. Benchmarks report it per
// operation (cpu-ns/op) beside ns/op: on a shared machine wall time follows the share of
// a core the run gets, CPU time much less.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
