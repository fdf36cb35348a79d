package workload

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/target"
)

// DefaultDrainTimeout is how long a stopping worker waits for in-flight I/Os when
// Config.DrainTimeout is zero.
const DefaultDrainTimeout = 5 * time.Second

// maxCPU is the highest CPU number a worker can be pinned to (the kernel's
// CPU_SETSIZE as x/sys/unix.CPUSet holds it).
const maxCPU = 1023

// Config describes a run. The zero value is not valid: Pattern (Read is zero), IOSize,
// QueueDepth and Duration or NumIOs must be set.
type Config struct {
	Pattern Pattern
	// ReadPercent is the share of reads, 0..100, for RW and RandRW; ignored otherwise.
	ReadPercent int

	IOSize     int // bytes per I/O; a multiple of every target's LBA size
	QueueDepth int // I/Os in flight per target per worker, spread over its queue pairs

	// Duration is measured after Warmup; statistics are reset when warm-up ends. With
	// NumIOs set, Duration is an upper bound and may be zero (no bound).
	Duration, Warmup time.Duration
	// NumIOs, when > 0, stops the run after this many measured I/Os in total, split
	// evenly over the (worker, target) jobs, the first NumIOs%jobs taking one more.
	NumIOs uint64

	// Cores lists the CPUs to run one pinned worker on each; empty runs one unpinned
	// worker.
	Cores []int
	// QPairsPerTarget is how many queue pairs each worker opens per target (0 means 1);
	// QueueDepth is spread over them round-robin, as spdk_nvme_perf -P does. With more
	// pairs than QueueDepth, each I/O goes to the next pair in turn, so every pair
	// carries I/O (spdk_nvme_perf -q 1 -P 2).
	QPairsPerTarget int

	// EveryCore makes every worker drive every target (spdk_nvme_perf
	// --use-every-core) instead of the round-robin distribution.
	EveryCore bool

	// FUA sets Force Unit Access on every I/O (spdk_nvme_perf --fua).
	FUA bool

	// OnIOError, when set with ContinueOnError, is told of every failed I/O, from the
	// worker that saw it (so it must be cheap and safe for concurrent use).
	OnIOError func(error)

	QueueSize      int                 // device queue entries; 0 = the engine's default
	MaxCompletions int                 // most completions one Poll reaps; 0 = no limit
	Doorbell       target.DoorbellMode // when queues ring their doorbells
	DoorbellN      int                 // N for target.DoorbellEveryN

	// BufferAlign (-A) makes every I/O buffer start aligned to exactly this many bytes:
	// a power of two >= 4. Below 4096 the buffer starts that far past a page boundary,
	// so it is not page aligned (exercising an unaligned PRP1). 0, or 4096 and above,
	// gives page-aligned buffers (allocators hand out pages, nothing coarser).
	BufferAlign int

	// ZipfTheta > 0 draws random offsets from a zipf distribution with this exponent
	// (any positive value: below 1, 1, above 1); 0 draws them uniformly.
	ZipfTheta float64

	// ContinueOnError (-Q) counts failed I/Os and goes on; otherwise the first failed
	// I/O stops the run with Result.Err set.
	ContinueOnError bool

	// Seed makes offsets and read/write choices reproducible: every (worker, target)
	// pair derives its own generator from it. It also seeds the verify pattern.
	Seed uint64

	Verify VerifyMode

	// IOUnitSize, when > 0, makes targets that can split I/O send every I/O as
	// commands of at most this many bytes (spdk_nvme_perf -O); a multiple of every
	// target's LBA size, at most IOSize. 0 = one command per I/O where possible.
	IOUnitSize int
	// Protection is the end-to-end protection information handling asked of targets
	// formatted with PI (spdk_nvme_perf -e).
	Protection target.Protection

	// DrainTimeout bounds how long stopping workers wait for in-flight I/Os before
	// giving up on a device that stopped answering; 0 = DefaultDrainTimeout.
	DrainTimeout time.Duration

	// Progress, when set, is called every ProgressInterval (0 = one second) from a
	// collector goroutine (never from a worker).
	Progress         func(Progress)
	ProgressInterval time.Duration

	// StartGate, when set, is called once every worker has opened its queues and before
	// the clock starts (warm-up, then measurement, begin when it returns); a run across
	// hosts waits there for its start instant or barrier. An error ends the run with no
	// I/O done.
	StartGate func(ctx context.Context) error
	// MeasureAt, when set, is the instant measurement begins (runs across hosts start
	// together): warm-up runs from the clock's start until then, whatever Warmup says.
	// A run whose clock starts at or after it fails with no I/O measured.
	MeasureAt time.Time
}

// Progress is a snapshot of a running workload.
type Progress struct {
	Elapsed   time.Duration // time spent in the current phase
	Remaining time.Duration // time left in the current phase; 0 when unbounded
	Warmup    bool          // the current phase is warm-up (its numbers are discarded)
	IOs       uint64        // I/Os completed in the current phase, all workers
	Bytes     uint64        // bytes moved in the current phase
	IOPS      float64       // rate over the last window of at least MinRateWindow; 0 = not known yet
	MiBps     float64       // the same in MiB/s
	// Workers is each worker thread's CPU use over the last sampling interval, in
	// worker order; nil where the thread's CPU time cannot be read.
	Workers []WorkerLoad
}

// WorkerLoad is the share of one CPU a worker thread used over a sampling interval.
type WorkerLoad struct {
	Core          int     // CPU the worker is pinned to; -1 when not pinned
	UserPercent   float64 // user-mode share of one CPU, 0-100
	SystemPercent float64 // kernel-mode share of one CPU, 0-100
}

// Validate checks the configuration on its own; Run additionally checks it against the
// targets (IOSize against LBA size and capacity).
func (c Config) Validate() error {
	if c.Pattern >= numPatterns {
		return fmt.Errorf("workload: pattern %d: accepted values are %v", uint8(c.Pattern), patternNames)
	}
	if c.Pattern.Mixed() && (c.ReadPercent < 0 || c.ReadPercent > 100) {
		return fmt.Errorf("workload: read percent %d: must be 0..100", c.ReadPercent)
	}
	if c.IOSize <= 0 || c.IOSize > math.MaxUint32 {
		return fmt.Errorf("workload: I/O size %d: must be a positive number of bytes below 4 GiB", c.IOSize)
	}
	if c.QueueDepth < 1 {
		return fmt.Errorf("workload: queue depth %d: must be at least 1", c.QueueDepth)
	}
	if c.QPairsPerTarget < 0 || c.QPairsPerTarget > maxQPairs {
		return fmt.Errorf("workload: queue pairs per target %d: must be 0 (one) to %d", c.QPairsPerTarget, maxQPairs)
	}
	if c.Duration < 0 || (c.Duration == 0 && c.NumIOs == 0) {
		return fmt.Errorf("workload: duration %v: must be positive (or zero with a number of I/Os)", c.Duration)
	}
	if c.Warmup < 0 {
		return fmt.Errorf("workload: warm-up %v: must not be negative", c.Warmup)
	}
	seen := make(map[int]bool, len(c.Cores))
	for _, cpu := range c.Cores {
		if cpu < 0 || cpu > maxCPU {
			return fmt.Errorf("workload: core %d: must be 0..%d", cpu, maxCPU)
		}
		if seen[cpu] {
			return fmt.Errorf("workload: core %d: listed twice; each core runs one worker", cpu)
		}
		seen[cpu] = true
	}
	if c.QueueSize < 0 {
		return fmt.Errorf("workload: queue size %d: must be 0 (engine default) or more", c.QueueSize)
	}
	if c.MaxCompletions < 0 {
		return fmt.Errorf("workload: max completions %d: must be 0 (no limit) or more", c.MaxCompletions)
	}
	switch c.Doorbell {
	case target.DoorbellPerPoll, target.DoorbellPerCommand:
	case target.DoorbellEveryN:
		if c.DoorbellN < 1 {
			return fmt.Errorf("workload: doorbell N %d: must be at least 1 with doorbell mode every-n", c.DoorbellN)
		}
	default:
		return fmt.Errorf("workload: doorbell mode %d: accepted are per-poll, every-n, per-command", uint8(c.Doorbell))
	}
	if c.BufferAlign != 0 && (c.BufferAlign < 4 || c.BufferAlign&(c.BufferAlign-1) != 0) {
		return fmt.Errorf("workload: buffer alignment %d: must be 0 or a power of two >= 4", c.BufferAlign)
	}
	if math.IsNaN(c.ZipfTheta) || math.IsInf(c.ZipfTheta, 0) || c.ZipfTheta < 0 {
		return fmt.Errorf("workload: zipf theta %v: must be 0 (uniform) or a positive finite number", c.ZipfTheta)
	}
	if c.ZipfTheta > 0 && !c.Pattern.Random() {
		return fmt.Errorf("workload: zipf theta %v: applies only to random patterns, not %s", c.ZipfTheta, c.Pattern)
	}
	switch c.Verify {
	case VerifyOff, VerifyWriteCheck:
	case VerifyReadOnly:
		if c.Pattern.readShare(c.ReadPercent) != 100 {
			return fmt.Errorf("workload: verify mode read-only with pattern %s (read percent %d): writes are refused, use read, randread or a 100%% read mix", c.Pattern, c.ReadPercent)
		}
	default:
		return fmt.Errorf("workload: verify mode %d: accepted are off, write-check, read-only", uint8(c.Verify))
	}
	if c.IOUnitSize < 0 || c.IOUnitSize > c.IOSize || c.IOUnitSize%4 != 0 {
		return fmt.Errorf("workload: I/O unit size %d: must be 0 (the I/O size) or a multiple of 4 bytes up to the I/O size %d", c.IOUnitSize, c.IOSize)
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("workload: drain timeout %v: must not be negative", c.DrainTimeout)
	}
	return nil
}

func (c Config) qpairs() int {
	if c.QPairsPerTarget == 0 {
		return 1
	}
	return c.QPairsPerTarget
}

func (c Config) progressInterval() time.Duration {
	if c.ProgressInterval <= 0 {
		return time.Second
	}
	return c.ProgressInterval
}

func (c Config) drainTimeout() time.Duration {
	if c.DrainTimeout == 0 {
		return DefaultDrainTimeout
	}
	return c.DrainTimeout
}

// bufferOffset is how far past a page boundary each buffer starts.
func (c Config) bufferOffset() int {
	if c.BufferAlign > 0 && c.BufferAlign < 4096 {
		return c.BufferAlign
	}
	return 0
}

// rotating reports whether there are more queue pairs than I/Os in flight, so that
// each I/O goes to the next pair in turn instead of staying on its own.
func (c Config) rotating() bool { return c.qpairs() > c.QueueDepth }
