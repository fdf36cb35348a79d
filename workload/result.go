package workload

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/nvmeperf/nvmeperf/driver/target"
)

// Result is what a run measured: one Job per (target, core, queue pair), with merged-able
// histograms. Reporters (package report) turn it into text or JSON; percentiles are
// always computed from (merged) histograms, never averaged.
type Result struct {
	Start    time.Time     // when measurement began (after warm-up)
	Duration time.Duration // measured time, warm-up excluded
	Jobs     []Job
	// Interrupted is set when the run was stopped early (Ctrl-C): the numbers are valid
	// for Duration.
	Interrupted bool
	// Err is the device or run failure that ended the run early, if any; the Jobs still
	// hold what was measured until then.
	Err error
	// Workers holds each worker thread's CPU time over the measured phase, in worker
	// order; empty when nothing was measured or the producer does not count it.
	Workers []WorkerCPU
}

// WorkerCPU is the CPU one worker's OS thread used in the measured phase (warm-up and
// queue set-up excluded), from getrusage(RUSAGE_THREAD). It is nvmeperf's own cost:
// a simulated controller's device thread and kernel threads (SQPOLL) are not in it.
type WorkerCPU struct {
	Core   int           // CPU the worker was pinned to; -1 when not pinned
	User   time.Duration // user-mode CPU time
	System time.Duration // kernel-mode CPU time (system calls, io_uring submission)
	IOs    uint64        // I/Os the worker completed in the measured phase, errors included
}

// NSPerIO is the worker's CPU nanoseconds per completed I/O; 0 without I/Os.
func (c WorkerCPU) NSPerIO() float64 {
	if c.IOs == 0 {
		return 0
	}
	return float64(c.User+c.System) / float64(c.IOs)
}

// TotalCPU sums the workers' CPU; its IOs are every worker's completions.
func (r Result) TotalCPU() WorkerCPU {
	t := WorkerCPU{Core: -1}
	for _, w := range r.Workers {
		t.User += w.User
		t.System += w.System
		t.IOs += w.IOs
	}
	return t
}

// Job is one worker's measurements for one target.
type Job struct {
	Target target.Info
	Core   int // CPU the worker was pinned to; -1 when not pinned
	Worker int // index of its worker (Result.Workers)
	QPairs int // queue pairs this worker drove for the target
	Read   Side
	Write  Side
	Verify VerifyStats // zero unless verify mode was on
	// Transport sums the transport counters of the job's queue pairs; nil when its
	// queues do not count them (kernel devices).
	Transport *target.QueueStats
}

// VerifyStats counts what verify mode checked on reads.
type VerifyStats struct {
	Checked    uint64 // blocks read and compared
	Mismatched uint64 // blocks whose contents were not what verify mode writes for that LBA
	Unwritten  uint64 // blocks that read as zeros (never written with the pattern)
	// First holds the first few mismatches as "LBA n offset m: want 0x.. got 0x.." lines.
	First []string
}

// Side is the measurements for one direction.
type Side struct {
	IOs    uint64 // completed successfully
	Bytes  uint64 // bytes of successful I/Os
	Errors uint64 // completed with an error
	// Latency holds submit-to-completion times in nanoseconds of successful I/Os
	// (LatencyLowest..LatencyHighest, LatencySigFigs significant figures).
	Latency *hdrhistogram.Histogram
}

// Histogram bounds shared by every producer so that histograms merge exactly.
const (
	LatencyLowest  = 1                       // ns
	LatencyHighest = int64(60 * time.Second) // ns; longer latencies are clamped
	LatencySigFigs = 3
)

// NewLatencyHistogram returns an empty histogram with the shared bounds.
func NewLatencyHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(LatencyLowest, LatencyHighest, LatencySigFigs)
}
