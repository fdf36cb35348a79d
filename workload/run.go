package workload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/verify"
)

// assignment is one (worker, target) pair of the SPDK-style distribution.
type assignment struct{ worker, target int }

// assign distributes targets over workers as spdk_nvme_perf does: for i below
// max(targets, workers), worker i%workers drives target i%targets. One target on four
// cores is driven by all four; four targets on one core are all driven by it.
func assign(workers, targets int) []assignment {
	n := max(workers, targets)
	out := make([]assignment, n)
	for i := range out {
		out[i] = assignment{worker: i % workers, target: i % targets}
	}
	return out
}

// share returns job i's part of total split over n jobs, the first total%n taking one
// more.
func share(total uint64, n, i int) uint64 {
	s := total / uint64(n)
	if uint64(i) < total%uint64(n) {
		s++
	}
	return s
}

// checkTargets validates the configuration against every target's geometry.
func checkTargets(targets []target.Target, cfg *Config) ([]target.Info, error) {
	if len(targets) == 0 {
		return nil, errors.New("workload: no targets: give at least one")
	}
	infos := make([]target.Info, len(targets))
	for i, t := range targets {
		if t == nil {
			return nil, fmt.Errorf("workload: target %d is nil", i)
		}
		info := t.Info()
		infos[i] = info
		if info.LBASize == 0 {
			return nil, fmt.Errorf("workload: target %d (%s): LBA size is 0", i, info.Name)
		}
		if cfg.IOSize%int(info.LBASize) != 0 {
			return nil, fmt.Errorf("workload: I/O size %d: must be a multiple of the LBA size %d of target %s", cfg.IOSize, info.LBASize, info.Name)
		}
		if cfg.IOUnitSize%int(info.LBASize) != 0 {
			return nil, fmt.Errorf("workload: I/O unit size %d: must be a multiple of the LBA size %d of target %s", cfg.IOUnitSize, info.LBASize, info.Name)
		}
		if cfg.Verify != VerifyOff {
			if err := verify.ValidateLBASize(int(info.LBASize)); err != nil {
				return nil, fmt.Errorf("workload: verify mode %s on target %s: %w", cfg.Verify, info.Name, err)
			}
		}
		if uint64(cfg.IOSize) > info.Capacity {
			return nil, fmt.Errorf("workload: I/O size %d: larger than the capacity %d bytes of target %s", cfg.IOSize, info.Capacity, info.Name)
		}
	}
	return infos, nil
}

// newWorkers builds the workers and their jobs (no queues yet).
func newWorkers(targets []target.Target, infos []target.Info, cfg *Config, rs *runState) []*worker {
	cores := cfg.Cores
	if len(cores) == 0 {
		cores = []int{-1}
	}
	workers := make([]*worker, len(cores))
	for i, cpu := range cores {
		workers[i] = &worker{index: i, cpu: cpu, cfg: cfg, run: rs, pub: new(published)}
	}
	kind := offsetSequential
	if cfg.Pattern.Random() {
		kind = offsetUniform
		if cfg.ZipfTheta > 0 {
			kind = offsetZipf
		}
	}
	as := assign(len(workers), len(targets))
	if cfg.EveryCore {
		as = assignEveryCore(len(workers), len(targets))
	}
	for i, a := range as {
		info := infos[a.target]
		j := &job{
			index:     i,
			core:      workers[a.worker].cpu,
			tgt:       targets[a.target],
			info:      info,
			offs:      newOffsets(kind, info.Capacity, uint64(cfg.IOSize), cfg.ZipfTheta),
			rng:       newRNG(cfg.Seed, a.worker, a.target),
			readShare: cfg.Pattern.readShare(cfg.ReadPercent),
			ioSize:    uint32(cfg.IOSize),
			limited:   cfg.NumIOs > 0,
			limit:     share(cfg.NumIOs, len(as), i),
			read:      side{lat: newLatencyRecorder()},
			write:     side{lat: newLatencyRecorder()},
		}
		w := workers[a.worker]
		w.jobs = append(w.jobs, j)
	}
	return workers
}

// assignEveryCore gives every worker every target, worker by worker, as
// spdk_nvme_perf --use-every-core does.
func assignEveryCore(workers, targets int) []assignment {
	out := make([]assignment, 0, workers*targets)
	for w := 0; w < workers; w++ {
		for t := 0; t < targets; t++ {
			out = append(out, assignment{worker: w, target: t})
		}
	}
	return out
}

// Run drives the targets with cfg and returns what was measured. Cancelling ctx (Ctrl-C)
// stops submission, drains in-flight I/Os and returns the measurements so far with
// Interrupted set. Run opens and closes queues but leaves the targets open.
func Run(ctx context.Context, targets []target.Target, cfg Config) Result {
	if err := cfg.Validate(); err != nil {
		return Result{Err: err}
	}
	infos, err := checkTargets(targets, &cfg)
	if err != nil {
		return Result{Err: err}
	}
	rs := &runState{epoch: time.Now(), warmupEnd: int64(cfg.Warmup)}
	if cfg.Warmup == 0 && cfg.MeasureAt.IsZero() {
		rs.beginMeasure(0)
	}
	workers := newWorkers(targets, infos, &cfg, rs)

	// Set-up: every worker pins itself and opens its queues on its own thread, then
	// waits, so that the clock starts only once all are ready.
	ready := make(chan error, len(workers))
	start := make(chan struct{})
	var abort atomic.Bool
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go w.runWorker(ready, start, &abort, wg.Done)
	}
	var setupErrs []error
	for range workers {
		if err := <-ready; err != nil {
			setupErrs = append(setupErrs, err)
		}
	}
	if len(setupErrs) > 0 {
		abort.Store(true)
		close(start)
		wg.Wait()
		return Result{Err: errors.Join(setupErrs...)}
	}

	var gateErr error
	if cfg.StartGate != nil {
		gateErr = cfg.StartGate(ctx)
	}
	rs.epoch = time.Now() // workers read it only after start is closed
	if gateErr == nil && !cfg.MeasureAt.IsZero() {
		// Measurement starts at the instant by the host's clock, whenever this process
		// got the CPU back: warm-up runs until then.
		ahead := cfg.MeasureAt.Sub(rs.epoch)
		if ahead <= 0 {
			gateErr = fmt.Errorf("workload: ready at %s, %v after the instant measurement was to start (%s)",
				rs.epoch.UTC().Format(time.RFC3339Nano), -ahead.Round(time.Microsecond), cfg.MeasureAt.UTC().Format(time.RFC3339Nano))
		}
		rs.warmupEnd = int64(ahead)
	}
	if gateErr != nil {
		abort.Store(true)
		close(start)
		wg.Wait()
		return Result{Err: gateErr, Interrupted: ctx.Err() != nil}
	}

	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	close(start)

	var collector sync.WaitGroup
	stopCollector := make(chan struct{})
	if cfg.Progress != nil {
		collector.Add(1)
		go func() {
			defer collector.Done()
			collectProgress(rs, workers, &cfg, stopCollector)
		}()
	}

	interrupted := coordinate(ctx, rs, &cfg, allDone)
	close(stopCollector)
	collector.Wait()

	return buildResult(rs, workers, &cfg, interrupted)
}

// coordinate runs the phase timers until every worker has finished. It reports whether
// ctx ended the run early.
func coordinate(ctx context.Context, rs *runState, cfg *Config, allDone <-chan struct{}) (interrupted bool) {
	var phaseTimer *time.Timer
	warming := !rs.measureSet.Load()
	if warming {
		phaseTimer = time.NewTimer(time.Duration(rs.warmupEnd))
	} else if cfg.Duration > 0 {
		phaseTimer = time.NewTimer(cfg.Duration)
	}
	var timerC <-chan time.Time
	if phaseTimer != nil {
		defer phaseTimer.Stop()
		timerC = phaseTimer.C
	}
	ctxDone := ctx.Done()
	for {
		select {
		case <-allDone:
			return interrupted
		case <-ctxDone:
			ctxDone = nil
			if !rs.stop.Load() {
				interrupted = true
			}
			rs.requestStop(rs.clock())
		case <-timerC:
			if warming {
				// Warm-up is over. A running worker switches at the planned instant
				// itself; when none was on a CPU to do so, none reaped anything since,
				// so the measured phase still starts at the planned instant.
				warming = false
				now := rs.clock()
				rs.beginMeasure(rs.warmupEnd)
				if cfg.Duration > 0 {
					phaseTimer.Reset(max(0, cfg.Duration-time.Duration(now-rs.measureStart.Load())))
				} else {
					timerC = nil
				}
				continue
			}
			timerC = nil
			rs.requestStop(rs.clock())
		}
	}
}

// buildResult merges the workers' measurements once they have all finished.
func buildResult(rs *runState, workers []*worker, cfg *Config, interrupted bool) Result {
	res := Result{Interrupted: interrupted}
	measured := rs.phase.Load() == phaseMeasure
	end := rs.stopAt.Load()
	if end == 0 {
		for _, w := range workers {
			end = max(end, w.finishedAt)
		}
	}
	start := rs.measureStart.Load()
	if measured && end > start {
		res.Duration = time.Duration(end - start)
	}
	res.Start = rs.epoch.Add(time.Duration(start))

	var jobs []*job
	var errs []error
	seen := map[string]bool{}
	jobWorker := map[*job]int{}
	if measured {
		res.Workers = make([]WorkerCPU, len(workers))
	}
	for wi, w := range workers {
		jobs = append(jobs, w.jobs...)
		for _, j := range w.jobs {
			jobWorker[j] = wi
		}
		if measured {
			c := WorkerCPU{Core: w.cpu, User: w.cpuUsed.user, System: w.cpuUsed.system}
			for _, j := range w.jobs {
				c.IOs += j.read.ios + j.read.errors + j.write.ios + j.write.errors
			}
			res.Workers[wi] = c
		}
		for _, err := range w.errs {
			if !seen[err.Error()] {
				seen[err.Error()] = true
				errs = append(errs, err)
			}
		}
	}
	res.Err = errors.Join(errs...)
	res.Jobs = make([]Job, len(jobs))
	for _, j := range jobs {
		if !measured { // stopped during warm-up: nothing was measured
			j.read.reset()
			j.write.reset()
			j.verify = VerifyStats{}
		}
		res.Jobs[j.index] = Job{
			Target: j.info,
			Core:   j.core,
			Worker: jobWorker[j],
			QPairs: cfg.qpairs(),
			Read:   j.read.export(),
			Write:  j.write.export(),
			Verify: j.verify,
		}
		if j.transport != nil {
			ts := *j.transport
			res.Jobs[j.index].Transport = &ts
		}
	}
	return res
}

func (s *side) export() Side {
	return Side{IOs: s.ios, Bytes: s.bytes, Errors: s.errors, Latency: s.lat.histogram()}
}

// MinRateWindow is the shortest interval a progress rate is computed over: right after
// warm-up ends (or a sample that came early) the window can be microseconds long, and
// the I/Os that completed in it would read as billions of IOPS. Until a window this long
// has passed in the current phase, Progress.IOPS and MiBps are 0 (unknown).
const MinRateWindow = 100 * time.Millisecond

// collectProgress samples the workers' published counters every cfg.progressInterval()
// and hands a Progress to cfg.Progress until stop is closed.
func collectProgress(rs *runState, workers []*worker, cfg *Config, stop <-chan struct{}) {
	tick := time.NewTicker(cfg.progressInterval())
	defer tick.Stop()
	var r rateWindow
	r.reset(rs.clock())
	var iops, mibps float64
	cpu := newLoadSampler(workers, rs.clock())
	lastPhase := rs.phase.Load()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		now := rs.clock()
		phase := rs.phase.Load()
		var ios, bytes uint64
		for _, w := range workers {
			ios += w.pub.ios.Load()
			bytes += w.pub.bytes.Load()
		}
		if phase != lastPhase { // counters restarted with the phase
			r.reset(rs.measureStart.Load())
			iops, mibps = 0, 0
			lastPhase = phase
		}
		var p Progress
		if phase == phaseWarmup {
			p.Warmup = true
			p.Elapsed = time.Duration(now)
			p.Remaining = max(0, cfg.Warmup-p.Elapsed)
		} else {
			p.Elapsed = time.Duration(now - rs.measureStart.Load())
			if cfg.Duration > 0 {
				p.Remaining = max(0, cfg.Duration-p.Elapsed)
			}
		}
		p.IOs, p.Bytes = ios, bytes
		if i, m, ok := r.sample(now, ios, bytes); ok {
			iops, mibps = i, m
		}
		p.IOPS, p.MiBps = iops, mibps
		p.Workers = cpu.sample(now)
		cfg.Progress(p)
	}
}

// rateWindow turns counter samples into rates over windows of at least MinRateWindow.
type rateWindow struct {
	at         int64 // clock of the window's start
	ios, bytes uint64
}

func (r *rateWindow) reset(at int64) { *r = rateWindow{at: at} }

// sample returns the rates since the window's start and starts a new window, or ok false
// when the window is shorter than MinRateWindow (or counters went backwards because a
// worker has not noticed a phase change yet: never a negative rate).
func (r *rateWindow) sample(now int64, ios, bytes uint64) (iops, mibps float64, ok bool) {
	dt := time.Duration(now - r.at)
	if dt < MinRateWindow || ios < r.ios || bytes < r.bytes {
		return 0, 0, false
	}
	iops = float64(ios-r.ios) / dt.Seconds()
	mibps = float64(bytes-r.bytes) / dt.Seconds() / (1 << 20)
	r.at, r.ios, r.bytes = now, ios, bytes
	return iops, mibps, true
}

// loadSampler turns readings of the worker threads' CPU times into per-interval shares.
type loadSampler struct {
	workers []*worker
	last    []threadTimes
	at      int64
	ok      bool // false once a thread's CPU time could not be read: no more samples
}

func newLoadSampler(workers []*worker, now int64) *loadSampler {
	l := &loadSampler{workers: workers, last: make([]threadTimes, len(workers)), at: now, ok: true}
	for i, w := range workers {
		if l.last[i], l.ok = taskCPU(w.tid); !l.ok {
			break
		}
	}
	return l
}

// sample returns each worker's CPU share since the previous sample, or nil.
func (l *loadSampler) sample(now int64) []WorkerLoad {
	dt := float64(now - l.at)
	if !l.ok || dt <= 0 {
		return nil
	}
	out := make([]WorkerLoad, len(l.workers))
	for i, w := range l.workers {
		t, ok := taskCPU(w.tid)
		if !ok {
			l.ok = false
			return nil
		}
		out[i] = WorkerLoad{Core: w.cpu,
			UserPercent:   100 * float64(t.user-l.last[i].user) / dt,
			SystemPercent: 100 * float64(t.system-l.last[i].system) / dt}
		l.last[i] = t
	}
	l.at = now
	return out
}

// userHZ is the unit of the CPU times in /proc/<pid>/task/<tid>/stat: USER_HZ, 100 on
// every Linux architecture's user ABI.
const userHZ = 100

// taskCPU reads another thread's user and system CPU time from /proc (getrusage only
// reads the calling thread's). The resolution is 1/USER_HZ, plenty for a once-a-second
// percentage.
func taskCPU(tid int) (threadTimes, bool) {
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return threadTimes{}, false
	}
	// The command name (field 2) may hold spaces; the fields after it are plain.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return threadTimes{}, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 { // f[0] is field 3 (state); utime is field 14, stime 15
		return threadTimes{}, false
	}
	u, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	s, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return threadTimes{}, false
	}
	tick := time.Second / userHZ
	return threadTimes{user: time.Duration(u) * tick, system: time.Duration(s) * tick}, true
}
