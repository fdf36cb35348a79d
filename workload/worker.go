package workload

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/target"
)

// Phases of a run, held in runState.phase.
const (
	phaseWarmup int32 = iota
	phaseMeasure
)

// Workers poll without pause, as spdk_nvme_perf does: a completion is timed by the
// first poll after it arrives. There is deliberately no idle back-off: a sleep of "20µs"
// lasts about 1.1 ms with Go's timers, and would add up to that much to the latency of
// every I/O slower than the spin threshold. A stuck device is bounded by the drain
// timeout, not by sleeping.

// A request's Tag holds its job's index within the worker above tagQueueBits and its
// queue's index below, so a completion finds both with a shift and a mask instead of
// two divisions per I/O.
const (
	tagQueueBits = 16
	tagQueueMask = 1<<tagQueueBits - 1
	maxQPairs    = 1 << tagQueueBits // queue pairs per target a worker can tell apart
)

// publishEvery is how often a worker stores its counters for the progress collector,
// which reads them once a second: an atomic store is a locked instruction on amd64,
// too dear to pay on every loop iteration when each iteration is one I/O.
const publishEvery = int64(time.Millisecond)

// runState is what workers and the coordinator share. Workers read it once per loop
// iteration, never per I/O.
type runState struct {
	epoch        time.Time    // all clocks of a run count nanoseconds from here
	phase        atomic.Int32 // phaseWarmup, then phaseMeasure
	stop         atomic.Bool  // stop submitting and drain
	stopAt       atomic.Int64 // clock of the first stop request; 0 = none yet
	measureStart atomic.Int64 // clock when phaseMeasure began
	// warmupEnd is the clock at which warm-up is due to end (0: no warm-up). The first
	// worker to read a clock past it begins measuring there, so the boundary is exact
	// to a loop iteration instead of to when a timer goroutine gets scheduled.
	warmupEnd  int64
	measureSet atomic.Bool // beginMeasure has run
}

// beginMeasure ends warm-up with measurement starting at clock at; only the first call
// (a worker past warmupEnd, or the coordinator's timer) counts.
func (s *runState) beginMeasure(at int64) bool {
	if !s.measureSet.CompareAndSwap(false, true) {
		return false
	}
	s.measureStart.Store(at)
	s.phase.Store(phaseMeasure)
	return true
}

func (s *runState) clock() int64 { return int64(time.Since(s.epoch)) }

// requestStop makes every worker stop submitting; the first caller's clock ends the
// measured interval.
func (s *runState) requestStop(now int64) {
	if now <= 0 {
		now = 1
	}
	s.stopAt.CompareAndSwap(0, now)
	s.stop.Store(true)
}

// published is what a worker tells the progress collector, stored once per loop
// iteration. Padding keeps workers' counters on separate cache lines.
type published struct {
	_     [64]byte
	ios   atomic.Uint64
	bytes atomic.Uint64
	_     [48]byte
}

// side accumulates one direction of one job.
type side struct {
	ios, bytes, errors uint64
	lat                latencyRecorder
}

func (s *side) reset() {
	s.ios, s.bytes, s.errors = 0, 0, 0
	s.lat.reset()
}

// job is one worker driving one target through its queue pairs.
type job struct {
	index     int // position in the SPDK-style assignment; orders Result.Jobs
	core      int // CPU of its worker; -1 when unpinned
	tgt       target.Target
	info      target.Info
	queues    []target.Queue
	reqs      [][]target.Request // per queue, one request (and buffer) per depth slot
	offs      offsets
	rng       rng
	readShare int // percent of I/Os that are reads
	ioSize    uint32

	limited  bool   // NumIOs gives this job a share
	limit    uint64 // its share of NumIOs
	issued   uint64 // submissions that count towards limit
	recorded uint64 // completions recorded towards limit
	inflight int
	failed   bool // its device failed: no more polls or submissions

	errReported bool // an I/O error of this job is already in the worker's errs

	nextQ     int                // rotating mode: the queue the next submission goes to
	transport *target.QueueStats // summed from its queues when they close

	read, write side
	verify      VerifyStats
}

// worker drives its jobs from one goroutine, locked to an OS thread and, when cpu >= 0,
// pinned to that CPU.
type worker struct {
	index int
	cpu   int
	tid   int // its OS thread, for the progress collector's CPU readings
	cfg   *Config
	run   *runState
	jobs  []*job

	// Copied from cfg once, so the per-I/O path reads worker fields only.
	rotate    bool // more queue pairs than depth: each I/O goes to the next pair
	verify    bool // verify mode is on
	reportErr bool // ContinueOnError with an OnIOError callback

	// done collects the requests Poll completed in this iteration; it has room for
	// every request, so appending never allocates.
	done []*target.Request

	now           int64 // clock of this iteration, stamped on every I/O it starts or ends
	lastReap      int64 // clock of the last iteration that reaped something
	measuring     bool
	stopping      bool
	drainDeadline int64
	outstanding   int
	errs          []error // failures in the order they happened
	finishedAt    int64

	ios, bytes uint64 // this phase's totals, published about every publishEvery
	pub        *published
	pubAt      int64 // clock of the last publication

	// cpuStart is the thread's CPU time when it began measuring, cpuUsed what it used
	// from then until its loop ended.
	cpuStart, cpuUsed threadTimes
}

// threadTimes is the calling thread's user and system CPU time.
type threadTimes struct{ user, system time.Duration }

// threadCPU reads the calling OS thread's CPU time. A worker stays locked to its
// thread from set-up to the end, so two readings on it are its own cost.
func threadCPU() threadTimes {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return threadTimes{}
	}
	return threadTimes{user: time.Duration(ru.Utime.Nano()), system: time.Duration(ru.Stime.Nano())}
}

// Complete implements target.Handler: it only queues the request, so that all of an
// iteration's completions are timed with one clock reading after polling.
func (w *worker) Complete(r *target.Request) {
	w.done = append(w.done, r)
}

// Requests carry Tag = job index within the worker << tagQueueBits | queue index, so a
// completion finds its job and queue without a lookup table.

// setup pins the calling goroutine's thread and opens every job's queues on it.
func (w *worker) setup() error {
	w.tid = unix.Gettid()
	if w.cpu >= 0 {
		var set unix.CPUSet
		set.Set(w.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("workload: worker %d: pin to CPU %d (is it online and in this process's allowed set?): %w", w.index, w.cpu, err)
		}
	}
	qpairs := w.cfg.qpairs()
	rotate := w.cfg.rotating()
	w.rotate = rotate
	w.verify = w.cfg.Verify != VerifyOff
	w.reportErr = w.cfg.ContinueOnError && w.cfg.OnIOError != nil
	total := 0
	for ji, j := range w.jobs {
		j.nextQ = w.cfg.QueueDepth % qpairs
		for qi := 0; qi < qpairs; qi++ {
			depth := w.cfg.QueueDepth / qpairs
			if qi < w.cfg.QueueDepth%qpairs {
				depth++
			}
			qdepth := depth
			if rotate {
				// Requests move from pair to pair: any of them may be on any pair,
				// each with its own buffer index.
				qdepth = w.cfg.QueueDepth
			}
			q, err := j.tgt.OpenQueue(target.QueueConfig{
				Depth:          qdepth,
				QueueSize:      w.cfg.QueueSize,
				IOSize:         w.cfg.IOSize,
				Buffers:        qdepth,
				FUA:            w.cfg.FUA,
				BufferOffset:   w.cfg.bufferOffset(),
				Doorbell:       w.cfg.Doorbell,
				DoorbellN:      w.cfg.DoorbellN,
				MaxCompletions: w.cfg.MaxCompletions,
				Handler:        w,
				IOUnitSize:     w.cfg.IOUnitSize,
				Protection:     w.cfg.Protection,
			})
			if err != nil {
				return fmt.Errorf("workload: worker %d: open queue %d on %s: %w", w.index, qi, j.info.Name, err)
			}
			j.queues = append(j.queues, q)
			reqs := make([]target.Request, depth)
			for i := range reqs {
				reqs[i] = target.Request{Buf: i, Length: j.ioSize, Tag: ji<<tagQueueBits | qi}
				if rotate {
					reqs[i].Buf = qi // one request per pair at the start
				}
			}
			j.reqs = append(j.reqs, reqs)
			total += depth
		}
	}
	w.done = make([]*target.Request, 0, total)
	return nil
}

// closeQueues releases every queue the worker opened.
func (w *worker) closeQueues() error {
	var first error
	for _, j := range w.jobs {
		for _, q := range j.queues {
			if sq, ok := q.(target.StatsQueue); ok {
				if j.transport == nil {
					j.transport = &target.QueueStats{}
				}
				j.transport.Add(sq.TransportStats())
			}
			if err := q.Close(); err != nil && first == nil {
				first = fmt.Errorf("workload: worker %d: close queue on %s: %w", w.index, j.info.Name, err)
			}
		}
		j.queues = nil
	}
	return first
}

// start fills every queue to its depth.
func (w *worker) start() {
	w.now = w.run.clock()
	w.lastReap = w.now
	w.measuring = w.run.phase.Load() == phaseMeasure
	if w.measuring {
		w.cpuStart = threadCPU()
	}
	for _, j := range w.jobs {
		for qi, q := range j.queues {
			for i := range j.reqs[qi] {
				if w.stopping {
					return
				}
				w.submit(j, q, &j.reqs[qi][i])
			}
		}
	}
}

// loop runs iterations until the worker is finished, then closes its queues.
func (w *worker) loop() {
	for w.step() {
	}
	w.finishedAt = w.run.clock()
	if w.measuring {
		end := threadCPU()
		w.cpuUsed = threadTimes{user: end.user - w.cpuStart.user, system: end.system - w.cpuStart.system}
	}
	if err := w.closeQueues(); err != nil {
		w.errs = append(w.errs, err)
	}
}

// step is one loop iteration: check the shared phase and stop flags, poll every queue,
// read the clock once, then account and resubmit every completion. It returns false
// when the worker is finished.
func (w *worker) step() bool {
	if !w.measuring {
		if w.run.phase.Load() == phaseMeasure {
			w.resetStats()
		} else if w.run.warmupEnd > 0 && w.now >= w.run.warmupEnd {
			w.run.beginMeasure(w.run.warmupEnd)
			w.resetStats()
		}
	}
	if !w.stopping && w.run.stop.Load() {
		w.beginStop(w.now)
	}
	for _, j := range w.jobs {
		if j.failed {
			continue
		}
		for _, q := range j.queues {
			if _, err := q.Poll(); err != nil {
				w.failJob(j, err)
				break
			}
		}
	}
	w.now = w.run.clock()
	reaped := len(w.done)
	for i, r := range w.done {
		w.complete(r)
		w.done[i] = nil
	}
	w.done = w.done[:0]
	for _, j := range w.jobs {
		if j.failed && j.inflight > 0 {
			// The queue promised to complete everything with errors on failure; if
			// it did not, abandon the rest rather than wait for a dead device.
			w.outstanding -= j.inflight
			j.inflight = 0
		}
	}
	if w.now-w.pubAt >= publishEvery {
		w.publish()
	}
	if reaped > 0 {
		w.lastReap = w.now
	}
	if w.outstanding == 0 {
		// Nothing in flight: either stopping is complete, or every job used up its
		// NumIOs share (resubmission happens in complete, so idle slots mean that).
		return false
	}
	if w.stopping && w.now >= w.drainDeadline {
		w.errs = append(w.errs, fmt.Errorf("workload: worker %d: %d I/Os never completed within the %v drain timeout; the device stopped answering", w.index, w.outstanding, w.cfg.drainTimeout()))
		return false
	}
	return true
}

// publish stores the counters the progress collector reads.
func (w *worker) publish() {
	w.pubAt = w.now
	w.pub.ios.Store(w.ios)
	w.pub.bytes.Store(w.bytes)
}

// failJob takes a job whose device failed out of the run: the worker records the
// error, stops submitting to and polling that target, and goes on with its other
// targets; other workers are not stopped.
func (w *worker) failJob(j *job, err error) {
	j.failed = true
	w.errs = append(w.errs, fmt.Errorf("workload: worker %d: %s: %w", w.index, j.info.Name, err))
}

func (w *worker) beginStop(now int64) {
	if w.stopping {
		return
	}
	w.stopping = true
	w.drainDeadline = now + int64(w.cfg.drainTimeout())
}

// resetStats discards warm-up numbers. I/Os in flight now complete in the measured
// phase and count there, as in spdk_nvme_perf.
func (w *worker) resetStats() {
	w.measuring = true
	w.cpuStart = threadCPU()
	for _, j := range w.jobs {
		j.read.reset()
		j.write.reset()
		j.verify = VerifyStats{}
		j.issued = uint64(j.inflight)
		j.recorded = 0
	}
	w.ios, w.bytes = 0, 0
	w.publish() // at once: the collector must not take warm-up counts for measured ones
}

// submit starts r on q with the job's next offset and direction, unless the job's
// NumIOs share is used up.
func (w *worker) submit(j *job, q target.Queue, r *target.Request) {
	if w.measuring && j.limited && j.issued >= j.limit {
		return
	}
	r.Offset = j.offs.next(&j.rng)
	switch j.readShare {
	case 100:
		r.Op = target.OpRead
	case 0:
		r.Op = target.OpWrite
	default:
		if j.rng.below(100) < uint64(j.readShare) {
			r.Op = target.OpRead
		} else {
			r.Op = target.OpWrite
		}
	}
	if w.verify {
		w.prepareVerify(j, q, r)
	}
	r.Err = nil
	r.Start = w.now
	if err := q.Submit(r); err != nil {
		// A refused submission means the queue itself is broken, not one I/O.
		w.failJob(j, fmt.Errorf("submit %s at offset %d: %w", r.Op, r.Offset, err))
		return
	}
	j.issued++
	j.inflight++
	w.outstanding++
}

// complete accounts one completion and, unless stopping, resubmits the request.
func (w *worker) complete(r *target.Request) {
	j := w.jobs[r.Tag>>tagQueueBits]
	j.inflight--
	w.outstanding--
	record := !(w.measuring && j.limited && j.recorded >= j.limit)
	if record {
		j.recorded++
		s := &j.write
		if r.Op == target.OpRead {
			s = &j.read
		}
		if r.Err != nil {
			s.errors++
			if w.reportErr {
				w.cfg.OnIOError(fmt.Errorf("%s %s at offset %d: %w", j.info.Name, r.Op, r.Offset, r.Err))
			}
			// Requests a failed device aborted are counted but do not stop the
			// other workers: only a genuine I/O error does.
			if !w.cfg.ContinueOnError && !j.failed {
				if !j.errReported {
					j.errReported = true
					w.errs = append(w.errs, fmt.Errorf("workload: worker %d: %s %s at offset %d: %w", w.index, j.info.Name, r.Op, r.Offset, r.Err))
				}
				w.run.requestStop(w.now)
				w.beginStop(w.now)
			}
		} else {
			lat := w.now - r.Start
			if lat < LatencyLowest {
				lat = LatencyLowest
			} else if lat > LatencyHighest {
				lat = LatencyHighest
			}
			s.lat.record(lat)
			s.ios++
			s.bytes += uint64(r.Length)
			w.ios++
			w.bytes += uint64(r.Length)
			if w.verify && r.Op == target.OpRead {
				w.checkVerify(j, r)
			}
		}
	}
	if !w.stopping && !j.failed {
		qi := r.Tag & tagQueueMask
		if w.rotate {
			qi = j.nextQ
			j.nextQ++
			if j.nextQ == len(j.queues) {
				j.nextQ = 0
			}
			r.Tag = r.Tag&^tagQueueMask | qi
		}
		w.submit(j, j.queues[qi], r)
	}
}

// runWorker is the worker goroutine: it locks its thread, sets up, reports readiness,
// waits for the start signal, runs, and reports back on done.
func (w *worker) runWorker(ready chan<- error, start <-chan struct{}, abort *atomic.Bool, done func()) {
	defer done()
	runtime.LockOSThread()
	if w.cpu < 0 {
		defer runtime.UnlockOSThread()
	}
	// A pinned worker exits still locked, so the runtime ends its thread instead of
	// handing a thread pinned to one CPU to other goroutines.
	if err := w.setup(); err != nil {
		w.closeQueues()
		ready <- err
		return
	}
	ready <- nil
	<-start
	if abort.Load() {
		w.closeQueues()
		return
	}
	w.start()
	w.loop()
}
