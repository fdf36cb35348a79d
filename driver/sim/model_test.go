package sim

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

func TestParseOptions(t *testing.T) {
	cfg, err := ParseOptions(map[string]string{
		"namespaces": "2", "nssize": "16M", "lbasize": "512", "mqes": "255", "mdts": "7",
		"ioqueues": "8", "model": "nand", "readlat": "100us", "writelat": "15us", "proglat": "1ms",
		"channels": "4", "dies": "2", "nandpage": "32k", "wcache": "8m", "store": "mem",
		"memlimit": "64m", "rdydelay": "1ms", "to": "10", "cpus": "1,3-4",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Namespaces: 2, NamespaceSize: 16 << 20, LBASize: 512, MQES: 255, MDTS: 7, IOQueues: 8,
		Model: ModelNAND, Store: StoreMemory, MemLimit: 64 << 20, ReadyDelay: time.Millisecond, Timeout: 10,
		NAND: NANDConfig{ReadLatency: 100 * time.Microsecond, WriteLatency: 15 * time.Microsecond,
			ProgramLatency: time.Millisecond, Channels: 4, DiesPerChannel: 2, PageSize: 32 << 10, WriteCache: 8 << 20},
	}
	if cfg.CPUs == nil || len(cfg.CPUs) != 3 || cfg.CPUs[0] != 1 || cfg.CPUs[1] != 3 || cfg.CPUs[2] != 4 {
		t.Errorf("CPUs = %v, want [1 3 4]", cfg.CPUs)
	}
	cfg.CPUs = nil
	if cfg.NAND != want.NAND || cfg.Namespaces != want.Namespaces || cfg.NamespaceSize != want.NamespaceSize ||
		cfg.LBASize != want.LBASize || cfg.MQES != want.MQES || cfg.MDTS != want.MDTS || cfg.IOQueues != want.IOQueues ||
		cfg.Model != want.Model || cfg.Store != want.Store || cfg.MemLimit != want.MemLimit ||
		cfg.ReadyDelay != want.ReadyDelay || cfg.Timeout != want.Timeout {
		t.Errorf("ParseOptions = %+v\nwant %+v", cfg, want)
	}
	if def, err := ParseOptions(nil); err != nil || def.NamespaceSize != DefaultConfig().NamespaceSize {
		t.Errorf("no options: %+v, %v", def, err)
	}

	bad := []struct{ key, val, wantMsg string }{
		{"lbasize", "1000", `sim: key "lbasize": value "1000" is not accepted (want 512 or 4096)`},
		{"namespaces", "0", `key "namespaces": value "0"`},
		{"nssize", "12q", `key "nssize": value "12q"`},
		{"mqes", "0", `key "mqes": value "0"`},
		{"mdts", "17", `key "mdts": value "17"`},
		{"ioqueues", "x", `key "ioqueues": value "x"`},
		{"model", "hdd", `(want null or nand)`},
		{"readlat", "80", `key "readlat": value "80"`},
		{"nandpage", "12k", `power of two`},
		{"store", "disk", `(want auto, mem or discard)`},
		{"rdydelay", "-1s", `key "rdydelay"`},
		{"to", "0", `key "to": value "0"`},
		{"cpus", "3-1", `key "cpus": value "3-1"`},
		{"colour", "blue", `unknown key "colour"`},
	}
	for _, b := range bad {
		_, err := ParseOptions(map[string]string{b.key: b.val})
		if err == nil || !strings.Contains(err.Error(), b.wantMsg) {
			t.Errorf("%s=%s: error %v, want it to contain %q", b.key, b.val, err, b.wantMsg)
		}
	}
	// Cross-field check: nssize must be a multiple of lbasize.
	if _, err := ParseOptions(map[string]string{"nssize": "1000"}); err == nil || !strings.Contains(err.Error(), "NamespaceSize") {
		t.Errorf("nssize 1000 with 4 KiB blocks: %v", err)
	}
	if _, err := ParseOptions(map[string]string{"store": "mem", "nssize": "2g", "memlimit": "1g"}); err == nil || !strings.Contains(err.Error(), "MemLimit") {
		t.Errorf("store=mem above memlimit: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"512": 512, "4k": 4096, "4K": 4096, "64KiB": 64 << 10, "1g": 1 << 30, "2T": 2 << 40, "3mb": 3 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "-1", "1x", "99999999999t"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

func TestAllocator(t *testing.T) {
	c := newController(t, testConfig())
	a := c.Allocator()
	b1, err := a.Alloc(100)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := a.Alloc(3 * bus.PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if b1.Len() != 100 || b1.Addr%bus.PageSize != 0 || b2.Addr%bus.PageSize != 0 || b1.Addr < dmaBase {
		t.Errorf("buffers %#x (%d bytes), %#x: want page-aligned bus addresses from %#x", b1.Addr, b1.Len(), b2.Addr, dmaBase)
	}
	if b2.Addr-b1.Addr < bus.PageSize+dmaGap {
		t.Errorf("no gap between regions at %#x and %#x", b1.Addr, b2.Addr)
	}
	for _, v := range b2.Bytes {
		if v != 0 {
			t.Fatal("Alloc returned memory that is not zeroed")
		}
	}
	if _, err := a.Alloc(0); err == nil {
		t.Error("Alloc(0) accepted")
	}
	if err := a.Free(b1); err != nil {
		t.Errorf("Free: %v", err)
	}
	if err := a.Free(b1); err == nil {
		t.Error("double Free accepted")
	}
	if c.dma.translate(b1.Addr, 1) != nil {
		t.Error("freed memory still translates")
	}
	if got := c.dma.translate(b2.Addr+bus.PageSize, 8); &got[0] != &b2.Bytes[bus.PageSize] {
		t.Error("translate maps to the wrong host memory")
	}
	if c.dma.translate(b2.Addr+3*bus.PageSize-4, 8) != nil {
		t.Error("a range running off the end of a region translated")
	}
}

func TestFailNthIO(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.ioQueue(1, 8, 8)
	buf := h.mustAlloc(4096)
	bad := spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCWriteFault)
	if err := h.c.Faults().FailNthIO(3, bad); err != nil {
		t.Fatal(err)
	}
	fillPattern(buf.Bytes, 5)
	for i := 1; i <= 5; i++ {
		want := spec.StatusSuccess
		if i == 3 {
			want = bad
		}
		wantStatus(t, "write "+string(rune('0'+i)), h.rw(q, spec.IOWrite, 1, uint64(i), 1, buf), want)
	}
	// The failed write did not store its data.
	got := h.mustAlloc(4096)
	wantStatus(t, "read", h.rw(q, spec.IORead, 1, 3, 1, got), spec.StatusSuccess)
	if !bytes.Equal(got.Bytes, make([]byte, 4096)) {
		t.Error("a write failed by injection changed the media")
	}
	if err := h.c.Faults().FailNthIO(0, bad); err == nil {
		t.Error("FailNthIO(0) accepted")
	}
	if err := h.c.Faults().FailNthIO(1, spec.StatusSuccess); err == nil {
		t.Error("FailNthIO with a success status accepted")
	}
}

func TestFailLBARangeAndDelay(t *testing.T) {
	h := newHost(t, testConfig())
	q := h.ioQueue(1, 8, 8)
	buf := h.mustAlloc(8192)
	ure := spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCUnrecoveredReadError)
	if err := h.c.Faults().FailLBARange(1, 100, 10, ure); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "before the range", h.rw(q, spec.IORead, 1, 98, 2, buf), spec.StatusSuccess)
	wantStatus(t, "overlapping the start", h.rw(q, spec.IORead, 1, 99, 2, buf), ure)
	wantStatus(t, "last block", h.rw(q, spec.IORead, 1, 109, 1, buf.Slice(0, 4096)), ure)
	wantStatus(t, "after the range", h.rw(q, spec.IORead, 1, 110, 2, buf), spec.StatusSuccess)
	wantStatus(t, "flush is not in any range", st(h.run(q, ioCmd(spec.IOFlush, 1, 0, 1))), spec.StatusSuccess)
	h.c.Faults().ClearLBARange()
	wantStatus(t, "after clearing", h.rw(q, spec.IORead, 1, 100, 1, buf.Slice(0, 4096)), spec.StatusSuccess)

	const delay = 3 * time.Millisecond
	if err := h.c.Faults().SetCompletionDelay(delay); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wantStatus(t, "delayed read", h.rw(q, spec.IORead, 1, 0, 1, buf.Slice(0, 4096)), spec.StatusSuccess)
	if el := time.Since(start); el < delay {
		t.Errorf("completion after %v with a %v delay armed", el, delay)
	}
	h.c.Faults().Clear()
	if h.c.Faults().armed.Load() != 0 {
		t.Error("Clear left faults armed")
	}
}

// Store policy: memory use follows what is written and is bounded by the namespace
// size; namespaces above the limit discard data and hold nothing.
func TestStoreMemoryBound(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted a zero Config")
	}
	cfg := testConfig()
	cfg.NamespaceSize = 1 << 20
	cfg.Store = StoreMemory
	cfg.MemLimit = 512 << 10
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "MemLimit") {
		t.Fatalf("store=mem above the limit: %v", err)
	}

	cfg.MemLimit = 1 << 20
	h := newHost(t, cfg)
	q := h.ioQueue(1, 8, 8)
	buf := h.mustAlloc(128 << 10)
	// Write the whole namespace three times over: the store holds exactly its size.
	for pass := 0; pass < 3; pass++ {
		for lba := uint64(0); lba < 256; lba += 32 {
			if st := h.rw(q, spec.IOWrite, 1, lba, 32, buf); !st.OK() {
				t.Fatal(st)
			}
		}
	}
	if got := h.c.Stats().StoreBytes; got != cfg.NamespaceSize {
		t.Errorf("StoreBytes %d after overwriting a %d-byte namespace", got, cfg.NamespaceSize)
	}

	// Auto policy on a namespace far above the limit (1 TiB): discard, nothing held.
	big := testConfig()
	big.NamespaceSize = 1 << 40
	big.MemLimit = 64 << 20
	hb := newHost(t, big)
	qb := hb.ioQueue(1, 8, 8)
	data := hb.mustAlloc(128 << 10)
	fillPattern(data.Bytes, 1)
	for i := uint64(0); i < 64; i++ {
		if st := hb.rw(qb, spec.IOWrite, 1, i*(1<<20), 32, data); !st.OK() {
			t.Fatal(st)
		}
	}
	if s := hb.c.Stats(); s.StoreBytes != 0 || s.Writes != 64 {
		t.Errorf("discard store: %+v, want 64 writes and nothing stored", s)
	}
	// Reads move no data in discard mode: the host buffer keeps its contents.
	if st := hb.rw(qb, spec.IORead, 1, 0, 32, data); !st.OK() {
		t.Fatal(st)
	}
	want := make([]byte, len(data.Bytes))
	fillPattern(want, 1)
	if !bytes.Equal(data.Bytes, want) {
		t.Error("a discard-mode read changed the host buffer")
	}
}

// nand model: latency at queue depth 1 is at least the configured read latency, and
// queue depth shows the parallelism: throughput rises with depth up to the number of
// dies and never beats dies/latency.
func TestNANDModelLatencyAndParallelism(t *testing.T) {
	cfg := testConfig()
	cfg.Model = ModelNAND
	// Long enough that a loaded machine's scheduling delays (milliseconds) stay small
	// against it: the upper bounds below hold on a busy 2-core machine.
	cfg.NAND.ReadLatency = 20 * time.Millisecond
	cfg.NAND.Channels = 2
	cfg.NAND.DiesPerChannel = 2 // 4 dies
	cfg.NAND.PageSize = 4096
	h := newHost(t, cfg)
	q := h.ioQueue(1, 64, 64)
	bufs := h.mustAlloc(32 * 4096)

	measure := func(depth int, total int) (perIO time.Duration, meanLat time.Duration) {
		start := time.Now()
		var latSum time.Duration
		submitted := make([]time.Time, 1<<16)
		next := 0
		issue := func() {
			lba := uint64(next) // consecutive pages land on consecutive dies
			cmd := ioCmd(spec.IORead, 1, lba, 1)
			h.prps(&cmd, bufs.Addr+uint64(next%32)*4096, 4096)
			cid := q.put(&cmd)
			submitted[cid] = time.Now()
			next++
		}
		for i := 0; i < depth; i++ {
			issue()
		}
		q.ring()
		for done := 0; done < total; done++ {
			cqe := q.wait(t)
			if !st(cqe).OK() {
				t.Fatalf("read: %v", st(cqe))
			}
			latSum += time.Since(submitted[cqe.CID])
			if next < total {
				issue()
				q.ring()
			}
		}
		el := time.Since(start)
		return el / time.Duration(total), latSum / time.Duration(total)
	}

	// The floors are the model's promises and must hold on every attempt. The ceilings
	// (latency near the model's, die parallelism visible) depend on the scheduler: a
	// loaded machine can stall the device thread for tens of milliseconds, so they need
	// to hold on one of a few attempts.
	var ceilingErrs []string
	for attempt := 1; attempt <= 3; attempt++ {
		ceilingErrs = ceilingErrs[:0]
		_, lat1 := measure(1, 10)
		if lat1 < cfg.NAND.ReadLatency {
			t.Fatalf("QD1 read latency %v is below the model's %v", lat1, cfg.NAND.ReadLatency)
		}
		if lat1 > 2*cfg.NAND.ReadLatency {
			ceilingErrs = append(ceilingErrs, fmt.Sprintf("QD1 read latency %v, want about %v", lat1, cfg.NAND.ReadLatency))
		}
		per4, _ := measure(4, 40)
		if floor := cfg.NAND.ReadLatency / 4; per4 < floor {
			t.Fatalf("QD4 time per read %v is below the model's floor %v (4 dies)", per4, floor)
		}
		if per4 > lat1/2 {
			ceilingErrs = append(ceilingErrs, fmt.Sprintf("QD4 time per read %v vs QD1 latency %v: die parallelism not visible", per4, lat1))
		}
		// Deeper than the dies: throughput stays capped, latency grows.
		per16, lat16 := measure(16, 48)
		t.Logf("attempt %d: QD1 latency %v; QD4 %v per read (%.0f IOPS); QD16 %v per read, latency %v; model cap %.0f IOPS",
			attempt, lat1, per4, float64(time.Second)/float64(per4), per16, lat16, 4/cfg.NAND.ReadLatency.Seconds())
		if floor := cfg.NAND.ReadLatency / 4; per16 < floor {
			t.Fatalf("QD16 time per read %v beats the 4-die floor %v", per16, floor)
		}
		if lat16 < 3*cfg.NAND.ReadLatency {
			t.Fatalf("QD16 latency %v did not climb above 3× the read latency on 4 dies", lat16)
		}
		if len(ceilingErrs) == 0 {
			return
		}
	}
	t.Errorf("on every attempt: %s", strings.Join(ceilingErrs, "; "))
}

func TestNANDWriteCacheThrottles(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Model = ModelNAND
	cfg.NAND.WriteLatency = 10 * time.Microsecond
	cfg.NAND.ProgramLatency = 100 * time.Microsecond
	cfg.NAND.Channels, cfg.NAND.DiesPerChannel, cfg.NAND.PageSize = 1, 1, 4096
	cfg.NAND.WriteCache = 16 << 10 // 4 pages
	m := newNANDModel(cfg.NAND)
	// Writes into an empty cache take the write latency.
	if done := m.write(0, 0, 4096); done != int64(10*time.Microsecond) {
		t.Errorf("first write done at %d ns, want 10000", done)
	}
	// Fill well past the cache at one instant: the overflow waits for programming at
	// one page per 100 µs.
	var last int64
	for i := 1; i < 12; i++ {
		last = m.write(0, uint64(i)*4096, 4096)
	}
	want := int64(10*time.Microsecond) + 8*int64(100*time.Microsecond) // 12 pages in, 4 fit
	if last < want-1000 || last > want+1000 {
		t.Errorf("12th write done at %d ns, want about %d", last, want)
	}
	// Much later the cache is empty again.
	if done := m.write(int64(time.Second), 0, 4096); done != int64(time.Second)+int64(10*time.Microsecond) {
		t.Errorf("write after drain done at %d", done)
	}
	// A flush waits for whatever is cached.
	if f := m.flush(int64(time.Second)); f < int64(time.Second)+int64(100*time.Microsecond) {
		t.Errorf("flush with a page cached done at %d", f)
	}
}

// Several host threads, each with its own queue pair, write and read back their own
// blocks while faults are toggled from another goroutine.
func TestConcurrentQueues(t *testing.T) {
	h := newHost(t, testConfig())
	const queues, rounds = 4, 100
	type worker struct {
		q        *hostQueue
		src, dst bus.Buffer
		w, r     spec.Command
	}
	workers := make([]*worker, queues)
	for i := range workers {
		wk := &worker{q: h.ioQueue(uint16(i+1), 16, 16), src: h.mustAlloc(8192), dst: h.mustAlloc(8192)}
		fillPattern(wk.src.Bytes, byte(i))
		wk.w = ioCmd(spec.IOWrite, 1, uint64(i)*64, 2)
		h.prps(&wk.w, wk.src.Addr, 8192)
		wk.r = ioCmd(spec.IORead, 1, uint64(i)*64, 2)
		h.prps(&wk.r, wk.dst.Addr, 8192)
		workers[i] = wk
	}
	stop := make(chan struct{})
	toggled := make(chan struct{})
	go func() {
		defer close(toggled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = h.c.Faults().FailLBARange(1, 1<<20, 1, spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCUnrecoveredReadError))
			_ = h.c.Faults().SetCompletionDelay(time.Microsecond)
			_ = h.c.Stats()
			time.Sleep(100 * time.Microsecond)
			h.c.Faults().Clear()
		}
	}()
	errs := make(chan string, queues)
	for _, wk := range workers {
		go func(wk *worker) {
			for round := 0; round < rounds; round++ {
				for _, cmd := range []*spec.Command{&wk.w, &wk.r} {
					wk.q.submit(cmd)
					deadline := time.Now().Add(waitLimit)
					for {
						cqe, ok := wk.q.reap(true)
						if ok {
							if !st(cqe).OK() {
								errs <- st(cqe).String()
								return
							}
							break
						}
						if time.Now().After(deadline) {
							errs <- "timed out"
							return
						}
						runtime.Gosched()
					}
				}
				if !bytes.Equal(wk.src.Bytes, wk.dst.Bytes) {
					errs <- "data mismatch"
					return
				}
				clear(wk.dst.Bytes)
			}
			errs <- ""
		}(wk)
	}
	for range workers {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
	close(stop)
	<-toggled
	if s := h.c.Stats(); s.Writes != queues*rounds || s.Reads != queues*rounds {
		t.Errorf("stats %+v, want %d reads and writes", s, queues*rounds)
	}
}

func TestPinnedDeviceThread(t *testing.T) {
	cfg := testConfig()
	cfg.CPUs = []int{0}
	h := newHost(t, cfg) // brings the controller up from a thread pinned to CPU 0
	if st := st(h.adminCmd(adminOp(spec.AdminKeepAlive))); !st.OK() {
		t.Fatal(st)
	}
	var online unix.CPUSet
	if err := unix.SchedGetaffinity(0, &online); err != nil {
		t.Skip(err)
	}
	cfg.CPUs = []int{1023}
	if online.IsSet(1023) {
		t.Skip("CPU 1023 exists here")
	}
	if c, err := New(cfg); err == nil {
		c.Close()
		t.Error("New pinned to a CPU that does not exist succeeded")
	}
}
