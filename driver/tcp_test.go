package driver_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver"
	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/nvmetcp"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/serve"
)

// memTarget is a RAM namespace for the target under test: it completes each request
// on the next Poll.
type memTarget struct {
	mu   sync.Mutex
	data []byte
}

func (m *memTarget) Info() target.Info {
	return target.Info{Name: "mem", Transport: "mem", LBASize: 512, Capacity: uint64(len(m.data))}
}
func (m *memTarget) Close() error { return nil }
func (m *memTarget) OpenQueue(cfg target.QueueConfig) (target.Queue, error) {
	nbuf := max(cfg.Buffers, cfg.Depth)
	q := &memQueue{m: m, h: cfg.Handler, bufs: make([][]byte, nbuf)}
	for i := range q.bufs {
		q.bufs[i] = make([]byte, cfg.IOSize)
	}
	return q, nil
}

type memQueue struct {
	m             *memTarget
	h             target.Handler
	bufs          [][]byte
	pending, done []*target.Request
}

func (q *memQueue) Buffer(i int) []byte { return q.bufs[i] }
func (q *memQueue) Submit(r *target.Request) error {
	if int(r.Offset)+int(r.Length) > len(q.m.data) {
		return errors.New("out of range")
	}
	q.pending = append(q.pending, r)
	return nil
}
func (q *memQueue) Poll() (int, error) {
	q.done, q.pending = q.pending, q.done[:0]
	q.m.mu.Lock()
	for _, r := range q.done {
		if r.Op == target.OpWrite {
			copy(q.m.data[r.Offset:], q.bufs[r.Buf][:r.Length])
		} else {
			copy(q.bufs[r.Buf][:r.Length], q.m.data[r.Offset:])
		}
	}
	q.m.mu.Unlock()
	for _, r := range q.done {
		r.Err = nil
		q.h.Complete(r)
	}
	return len(q.done), nil
}
func (q *memQueue) Outstanding() int { return len(q.pending) }
func (q *memQueue) Close() error     { return nil }

// startTarget serves RAM namespaces of the given sizes with cfg on a loopback port.
func startTarget(t testing.TB, cfg serve.Config, sizes ...int) (*serve.Server, string) {
	t.Helper()
	for _, n := range sizes {
		cfg.Namespaces = append(cfg.Namespaces, &memTarget{data: make([]byte, n)})
	}
	s, err := serve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return s, ln.Addr().String()
}

func tcpTRID(addr, subnqn string) string {
	host, port, _ := net.SplitHostPort(addr)
	s := "trtype:TCP adrfam:IPv4 traddr:" + host + " trsvcid:" + port
	if subnqn != "" {
		s += " subnqn:" + subnqn
	}
	return s
}

// waiter completes requests for a test.
type waiter struct{ done []*target.Request }

func (w *waiter) Complete(r *target.Request) { w.done = append(w.done, r) }

// do submits rs on q and polls until all complete (generous deadline).
func do(t testing.TB, q target.Queue, w *waiter, rs ...*target.Request) {
	t.Helper()
	w.done = w.done[:0]
	for _, r := range rs {
		if err := q.Submit(r); err != nil {
			t.Fatalf("submit %s at %d: %v", r.Op, r.Offset, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(w.done) < len(rs) {
		if _, err := q.Poll(); err != nil {
			t.Fatalf("poll: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests completed in 60 s", len(w.done), len(rs))
		}
	}
	for _, r := range w.done {
		if r.Err != nil {
			t.Fatalf("%s at %d (%d bytes): %v", r.Op, r.Offset, r.Length, r.Err)
		}
	}
}

func fill(b []byte, seed int) {
	for i := range b {
		b[i] = byte(i*7 + seed*13 + i>>9)
	}
}

// TestTCPWriteReadBack writes and reads back, byte for byte, I/Os that travel in the
// capsule, by one R2T in one H2CData, in several H2CData PDUs above MAXH2CDATA, and
// above MDTS (split into several commands), with each digest combination, with and
// without the C2HData SUCCESS shortcut.
func TestTCPWriteReadBack(t *testing.T) {
	_, addr := startTarget(t, serve.Config{InCapsuleData: 8192, MaxH2CData: 16 << 10, MaxTransfer: 64 << 10}, 8<<20)
	for _, d := range []nvmetcp.Digests{{}, {Header: true}, {Data: true}, {Header: true, Data: true}} {
		t.Run(fmt.Sprintf("hdgst=%t,ddgst=%t", d.Header, d.Data), func(t *testing.T) {
			ts, c, err := driver.OpenTRID(tcpTRID(addr, serve.DefaultNQN), driver.Options{TCPDigests: d})
			if err != nil {
				t.Fatal(err)
			}
			defer ts[0].Close()
			if c.Transport != "TCP" || c.NVMe.Fabric() == nil {
				t.Fatalf("transport %q", c.Transport)
			}
			if got := c.NVMe.MaxTransfer(); got != 64<<10 {
				t.Fatalf("MDTS %d, want 64 KiB", got)
			}
			w := &waiter{}
			q, err := ts[0].OpenQueue(target.QueueConfig{Depth: 4, IOSize: 256 << 10, Handler: w})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			// 4 KiB in capsule; 12 KiB one H2CData; 48 KiB three; 256 KiB split in four.
			sizes := []int{4 << 10, 12 << 10, 48 << 10, 256 << 10}
			var writes, reads []*target.Request
			off := uint64(0)
			for i, n := range sizes {
				fill(q.Buffer(i)[:n], i+1)
				writes = append(writes, &target.Request{Op: target.OpWrite, Offset: off, Length: uint32(n), Buf: i})
				reads = append(reads, &target.Request{Op: target.OpRead, Offset: off, Length: uint32(n), Buf: i})
				off += uint64(n)
			}
			do(t, q, w, writes...)
			for i, n := range sizes {
				clear(q.Buffer(i)[:n])
			}
			do(t, q, w, reads...)
			want := make([]byte, 256<<10)
			for i, n := range sizes {
				fill(want[:n], i+1)
				if !bytes.Equal(q.Buffer(i)[:n], want[:n]) {
					t.Fatalf("read back %d bytes at %d: data differs", n, reads[i].Offset)
				}
			}
		})
	}
}

// TestTCPDiscovery: a trid without subnqn runs every subsystem the discovery
// controller lists.
func TestTCPDiscovery(t *testing.T) {
	_, addr := startTarget(t, serve.Config{NQN: "nqn.2026-11.io.nvmeperf:test-disc"}, 1<<20, 2<<20)
	ts, c, err := driver.OpenTRID(tcpTRID(addr, ""), driver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, x := range ts {
			x.Close()
		}
	}()
	if len(ts) != 2 {
		t.Fatalf("%d targets, want the 2 namespaces of the listed subsystem", len(ts))
	}
	if c.ID.SubNQN != "nqn.2026-11.io.nvmeperf:test-disc" {
		t.Fatalf("controller subnqn %q", c.ID.SubNQN)
	}
	if got := ts[1].Info().Capacity; got != 2<<20 {
		t.Fatalf("NSID 2 capacity %d", got)
	}
	if !strings.Contains(ts[0].Info().TRID, "subnqn:nqn.2026-11.io.nvmeperf:test-disc") {
		t.Fatalf("TRID %q", ts[0].Info().TRID)
	}
}

// TestTCPTargetClosesConnection: a target that goes away mid-run fails the queue with
// a clear error instead of hanging.
func TestTCPTargetClosesConnection(t *testing.T) {
	s, addr := startTarget(t, serve.Config{}, 4<<20)
	ts, _, err := driver.OpenTRID(tcpTRID(addr, serve.DefaultNQN), driver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ts[0].Close()
	w := &waiter{}
	q, err := ts[0].OpenQueue(target.QueueConfig{Depth: 8, IOSize: 4096, Handler: w})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	do(t, q, w, &target.Request{Op: target.OpRead, Length: 4096})
	s.Close()
	deadline := time.Now().Add(60 * time.Second)
	var perr error
	for perr == nil && time.Now().Before(deadline) {
		if err := q.Submit(&target.Request{Op: target.OpRead, Length: 4096}); err != nil {
			perr = err
			break
		}
		_, perr = q.Poll()
	}
	if perr == nil || !strings.Contains(perr.Error(), "closed the connection") {
		t.Fatalf("error %v, want one saying the controller closed the connection", perr)
	}
}

// TestTCPNoAllocationsPerIO: a 4 KiB read and a 16 KiB write (R2T) through the whole
// host (split layer, queue pair, NVMe/TCP queue) allocate nothing.
func TestTCPNoAllocationsPerIO(t *testing.T) {
	checkTCPAllocatesNothing(t, driver.Options{TCPDigests: nvmetcp.Digests{Header: true, Data: true}})
}

// checkTCPAllocatesNothing opens the host with opts against a loopback target and
// fails if a 4 KiB read plus a 16 KiB write (R2T: above the 8 KiB in-capsule size)
// allocate.
func checkTCPAllocatesNothing(t *testing.T, opts driver.Options) {
	t.Helper()
	_, addr := startTarget(t, serve.Config{InCapsuleData: 8192}, 4<<20)
	ts, _, err := driver.OpenTRID(tcpTRID(addr, serve.DefaultNQN), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ts[0].Close()
	w := &waiter{done: make([]*target.Request, 0, 8)}
	q, err := ts[0].OpenQueue(target.QueueConfig{Depth: 2, IOSize: 16 << 10, Handler: w})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rd := &target.Request{Op: target.OpRead, Length: 4096}
	wr := &target.Request{Op: target.OpWrite, Offset: 1 << 20, Length: 16 << 10, Buf: 1}
	do(t, q, w, rd, wr) // warm up
	allocs := testing.AllocsPerRun(200, func() { do(t, q, w, rd, wr) })
	if allocs != 0 {
		t.Fatalf("%.1f allocations per read+write, want 0", allocs)
	}
}

// TestTCPKeepAlive: keep alive commands keep the controller past its KATO.
func TestTCPKeepAlive(t *testing.T) {
	_, addr := startTarget(t, serve.Config{}, 1<<20)
	ts, c, err := driver.OpenTRID(tcpTRID(addr, serve.DefaultNQN), driver.Options{NVMe: nvme.Options{KeepAlive: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer ts[0].Close()
	time.Sleep(3 * time.Second) // the target drops a controller silent for KATO + 2 s
	w := &waiter{}
	q, err := ts[0].OpenQueue(target.QueueConfig{Depth: 1, IOSize: 4096, Handler: w})
	if err != nil {
		t.Fatalf("after 3 s with keep alive: %v", err)
	}
	defer q.Close()
	do(t, q, w, &target.Request{Op: target.OpRead, Length: 4096})
	if err := c.NVMe.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestTCPReadsWithResponseCapsules: with SQ flow control on, the target answers reads
// with C2HData and a response capsule (no SUCCESS shortcut); data digests on.
func TestTCPReadsWithResponseCapsules(t *testing.T) {
	_, addr := startTarget(t, serve.Config{}, 1<<20)
	nqn, hostID := nvmetcp.DefaultHostNQN()
	host := nvmetcp.NewHost(nvmetcp.HostConfig{Addr: addr, SubNQN: serve.DefaultNQN, HostNQN: nqn, HostID: hostID,
		Digests: nvmetcp.Digests{Data: true}, SQFlowControl: true})
	ctrl, err := nvme.AttachFabric(host, nvme.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tg := nvme.NewTarget(ctrl.Namespaces()[0], target.Info{Name: "tcp"}, ctrl.Detach)
	defer tg.Close()
	w := &waiter{}
	q, err := tg.OpenQueue(target.QueueConfig{Depth: 4, IOSize: 16 << 10, Handler: w})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	fill(q.Buffer(0), 5)
	do(t, q, w, &target.Request{Op: target.OpWrite, Offset: 64 << 10, Length: 16 << 10, Buf: 0})
	clear(q.Buffer(1))
	do(t, q, w, &target.Request{Op: target.OpRead, Offset: 64 << 10, Length: 16 << 10, Buf: 1})
	if !bytes.Equal(q.Buffer(0), q.Buffer(1)) {
		t.Fatal("read back differs")
	}
	if host.ControllerID() == 0xFFFF {
		t.Fatal("no controller ID from Connect")
	}
}

// BenchmarkTCPRead4K: 4 KiB reads, 32 in flight on one NVMe/TCP queue pair, against
// `nvmeperf serve` over a RAM namespace in the same process (so the target's CPU counts
// too): indicative only.
func BenchmarkTCPRead4K(b *testing.B) {
	_, addr := startTarget(b, serve.Config{}, 64<<20)
	ts, _, err := driver.OpenTRID(tcpTRID(addr, serve.DefaultNQN), driver.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ts[0].Close()
	const depth = 32
	w := &resubmitter{}
	q, err := ts[0].OpenQueue(target.QueueConfig{Depth: depth, IOSize: 4096, Handler: w})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	w.q = q
	reqs := make([]target.Request, depth)
	b.ReportAllocs()
	b.ResetTimer()
	w.left = b.N
	for i := range reqs {
		reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(i) * 4096, Length: 4096, Buf: i}
		if w.left > 0 {
			w.left--
			w.inflight++
			if err := q.Submit(&reqs[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	for w.inflight > 0 {
		if _, err := q.Poll(); err != nil {
			b.Fatal(err)
		}
		if w.err != nil {
			b.Fatal(w.err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "IOPS")
}

type resubmitter struct {
	q              target.Queue
	left, inflight int
	err            error
}

func (r *resubmitter) Complete(req *target.Request) {
	if req.Err != nil {
		r.err = req.Err
	}
	r.inflight--
	if r.left > 0 {
		r.left--
		r.inflight++
		if err := r.q.Submit(req); err != nil {
			r.err = err
		}
	}
}
