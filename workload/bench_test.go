package workload

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/target"
)

// nullTarget's queues complete every request on the next poll with no bookkeeping of
// their own (no atomics, no divisions), so a benchmark on it measures the engine.
type nullTarget struct{ info target.Info }

func (t *nullTarget) Info() target.Info { return t.info }
func (t *nullTarget) Close() error      { return nil }
func (t *nullTarget) OpenQueue(cfg target.QueueConfig) (target.Queue, error) {
	n := 1
	for n < cfg.Depth {
		n <<= 1
	}
	return &nullQueue{h: cfg.Handler, ring: make([]*target.Request, n), mask: n - 1, buf: make([]byte, cfg.IOSize)}, nil
}

type nullQueue struct {
	h          target.Handler
	ring       []*target.Request
	mask       int
	head, tail int
	buf        []byte
	completed  uint64
}

func (q *nullQueue) Buffer(int) []byte { return q.buf }
func (q *nullQueue) Submit(r *target.Request) error {
	q.ring[q.tail&q.mask] = r
	q.tail++
	return nil
}
func (q *nullQueue) Poll() (int, error) {
	n := q.tail - q.head
	for ; q.head != q.tail; q.head++ {
		q.h.Complete(q.ring[q.head&q.mask])
	}
	q.completed += uint64(n)
	return n, nil
}
func (q *nullQueue) Outstanding() int { return q.tail - q.head }
func (q *nullQueue) Close() error     { return nil }

// threadCPUNanos is the calling thread's CPU time, so benchmarks on a shared machine
// can report the CPU an operation costs besides the wall time.
func threadCPUNanos() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// benchWorker runs the worker loop for b.N I/Os against a null target and reports
// CPU ns per I/O (thread CPU time, robust against a loaded machine) besides ns/op.
func benchWorker(b *testing.B, cfg Config) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	nt := &nullTarget{info: target.Info{Name: "null", Transport: "null", LBASize: 512, Capacity: 1 << 40}}
	cfg.IOSize, cfg.Duration = 4096, time.Hour
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	infos, err := checkTargets([]target.Target{nt}, &cfg)
	if err != nil {
		b.Fatal(err)
	}
	rs := &runState{epoch: time.Now()}
	rs.phase.Store(phaseMeasure)
	w := newWorkers([]target.Target{nt}, infos, &cfg, rs)[0]
	if err := w.setup(); err != nil {
		b.Fatal(err)
	}
	defer w.closeQueues()
	w.start()
	count := func() uint64 {
		var n uint64
		for _, q := range w.jobs[0].queues {
			n += q.(*nullQueue).completed
		}
		return n
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := threadCPUNanos()
	start := count()
	for count()-start < uint64(b.N) {
		w.step()
	}
	b.StopTimer()
	b.ReportMetric(float64(threadCPUNanos()-cpu0)/float64(b.N), "cpu-ns/io")
}

func BenchmarkWorkerNullQD128(b *testing.B) {
	benchWorker(b, Config{Pattern: RandRead, QueueDepth: 128})
}

func BenchmarkWorkerNullQD1(b *testing.B) {
	benchWorker(b, Config{Pattern: RandRead, QueueDepth: 1})
}

func BenchmarkWorkerNullMixedQD32(b *testing.B) {
	benchWorker(b, Config{Pattern: RandRW, ReadPercent: 70, QueueDepth: 32})
}

// cpuPerOp runs f b.N times on a locked thread and reports its thread CPU per call.
func cpuPerOp(b *testing.B, f func(i int)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	cpu0 := threadCPUNanos()
	for i := 0; i < b.N; i++ {
		f(i)
	}
	b.StopTimer()
	b.ReportMetric(float64(threadCPUNanos()-cpu0)/float64(b.N), "cpu-ns/op")
}

func benchOffsets(b *testing.B, kind offsetKind, theta float64) {
	o := newOffsets(kind, 1<<40, 4096, theta)
	r := newRNG(1, 0, 0)
	var sum uint64
	cpuPerOp(b, func(int) { sum += o.next(&r) })
	if sum == 1 {
		b.Log(sum)
	}
}

func BenchmarkOffsetsSequential(b *testing.B) { benchOffsets(b, offsetSequential, 0) }
func BenchmarkOffsetsUniform(b *testing.B)    { benchOffsets(b, offsetUniform, 0) }
func BenchmarkOffsetsZipf(b *testing.B)       { benchOffsets(b, offsetZipf, 1.2) }

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewLatencyHistogram()
	cpuPerOp(b, func(i int) { _ = h.RecordValue(int64(i&0xffff) + 1000) })
}

// BenchmarkLatencyRecord is what the worker pays per I/O to record a latency
// (BenchmarkHistogramRecord is hdrhistogram's RecordValue, which it replaced).
func BenchmarkLatencyRecord(b *testing.B) {
	l := newLatencyRecorder()
	cpuPerOp(b, func(i int) { l.record(int64(i&0xffff) + 1000) })
}
