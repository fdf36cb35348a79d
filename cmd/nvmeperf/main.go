// Command nvmeperf is an NVMe benchmark: a userspace NVMe driver, a simulated
// controller and io_uring behind one workload engine, with spdk_nvme_perf's command
// line, SPDK-style text reports and versioned JSON for CI.
//
// This package is the only one that talks to the user: it parses flags, opens targets,
// runs the workload and writes the report (stdout) and notices (stderr).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/nvmeperf/nvmeperf/driver/blockdev"
	"github.com/nvmeperf/nvmeperf/driver/pcie"
	"github.com/nvmeperf/nvmeperf/report"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

// Exit statuses: report.Judge decides them with the status (see docs/safety.md).
const (
	exitOK      = report.ExitOK
	exitFailed  = report.ExitFailed // I/O errors (without -Q), a device failure, a verify failure or a run error
	exitUsage   = report.ExitUsage  // a bad command line or a refusal to write; nothing was done
	exitSignal2 = report.ExitInterrupted
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	return newApp(args, stdout, stderr).run()
}

func (app *app) run() int {
	root := app.rootCommand()
	argv, err := app.cliArgs(root, app.args[1:])
	if err != nil {
		fmt.Fprintf(app.stderr, "nvmeperf: %v\n", err)
		fmt.Fprintln(app.stderr, "Run 'nvmeperf --help' for the flags.")
		app.writeFailureJSON(report.UsageVerdict(err.Error()))
		return exitUsage
	}
	root.SetArgs(argv)
	root.SetOut(app.stdout)
	root.SetErr(app.stderr)
	err = root.Execute()
	if err == nil {
		return app.status
	}
	// bench may have silenced a stream that turned out to name a target.
	stderr := app.stderr
	var ue *usageError
	if errors.As(err, &ue) || app.flagError(err) {
		fmt.Fprintf(stderr, "nvmeperf: %v\n", err)
		fmt.Fprintln(stderr, "Run 'nvmeperf --help' for the flags.")
		app.writeFailureJSON(report.UsageVerdict(err.Error()))
		return exitUsage
	}
	fmt.Fprintf(stderr, "nvmeperf: %v\n", err)
	if app.status == exitOK {
		return exitFailed
	}
	return app.status
}

type app struct {
	args    []string
	stdout  io.Writer
	stderr  io.Writer
	opts    options
	compat  compatOpts  // spdk_nvme_perf options beyond opts (spdkcompat.go)
	cluster clusterOpts // runs across hosts (cluster.go)
	perf    perfOpts    // nvmeperf's own cost (cpuprofile.go)
	status  int
	root    *cobra.Command

	recovery recoveryOpts // command timeouts (recovery.go)

	guard         *blockdev.Guard // what may be written, knowing the targets
	out           *os.File        // --output, opened and checked before the targets
	outCreated    bool            // this run created --output
	sideOutputs   []*sideOutput   // other file flags, under --output's rules
	reportWritten bool
	// phaseHook, set by tests, runs at the start of a phase ("open", "run"), so a
	// signal can be sent at exactly that point.
	phaseHook func(phase string)
	// probe lists local NVMe controllers; tests replace it.
	probe func() ([]pcie.Controller, error)

	// results holds --repeat, --status-interval and --percentiles (results.go).
	results resultsOptions
}

func newApp(args []string, stdout, stderr io.Writer) *app {
	return &app{args: args, stdout: stdout, stderr: stderr, probe: pcie.Probe, guard: &blockdev.Guard{}}
}

// argsUsage is cobra.ExactArgs as a usage error (exit 2) that says what is expected.
func argsUsage(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			if n == 0 {
				return usagef("%s takes no arguments, got %q", cmd.Name(), args)
			}
			return usagef("%s needs %s (%d argument), got %d: %q", cmd.Name(), what, n, len(args), args)
		}
		return nil
	}
}

// flagError tells cobra's own flag parsing errors apart from run failures.
func (a *app) flagError(err error) bool {
	_, ok := err.(flagParseError)
	return ok
}

type flagParseError struct{ error }

func (a *app) rootCommand() *cobra.Command {
	o := &a.opts
	root := &cobra.Command{
		Use:   "nvmeperf -q DEPTH -o SIZE -w PATTERN -t SECONDS [-r TRID]... [DEVICE|FILE]...",
		Short: "NVMe benchmark: userspace driver, simulated controller and io_uring, with spdk_nvme_perf's flags",
		Long: `nvmeperf measures IOPS, bandwidth and latency of NVMe storage with one pinned worker
per core and one queue pair per worker, and reports them like spdk_nvme_perf (text) or as
versioned JSON for CI.

Targets: -r transport IDs ('trtype:PCIe traddr:0000:04:00.0', 'trtype:sim model:nand'),
and kernel block devices or files as arguments (/dev/nvme0n1, /dev/ng0n1, ./file). With
none, nvmeperf uses local controllers bound for userspace (scripts/setup.sh), or the
built-in simulated controller when the machine has no NVMe at all.`,
		Example: `  nvmeperf -q 128 -o 4096 -w randread -t 10
  nvmeperf -q 32 -o 4k -w randrw -M 70 -t 30 -c 0x3 -r 'trtype:sim model:nand' -LL
  nvmeperf -q 128 -o 4096 -w randread -t 60 -r 'trtype:PCIe traddr:0000:04:00.0'
  nvmeperf -q 64 -o 4k -w randread -t 10 --output-format json /dev/nvme0n1`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionString(),
		// Arguments are kernel devices and files, not subcommands.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.results.check(); err != nil {
				return err
			}
			if a.results.repeat > 1 {
				return a.repeatBench()
			}
			return a.bench(cmd, args)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagParseError{err} })
	f := root.Flags()
	f.SortFlags = false
	f.IntVarP(&o.depth, "io-depth", "q", 0, "I/Os in flight per namespace per core (required)")
	f.StringVarP(&o.ioSize, "io-size", "o", "", "bytes per I/O: 512, 4096, 4k, 128k, 1m (required)")
	f.StringVarP(&o.pattern, "io-pattern", "w", "", "read, write, randread, randwrite, rw or randrw (required)")
	f.IntVarP(&o.readPercent, "rwmixread", "M", 0, "percentage of reads for rw and randrw (required with them)")
	f.Float64VarP(&o.seconds, "time", "t", 0, "seconds to measure (required unless -d)")
	f.Float64VarP(&o.warmup, "warmup-time", "a", 0, "seconds of warm-up before measuring; its numbers are discarded")
	f.Uint64VarP(&o.numIOs, "number-ios", "d", 0, "stop after N I/Os per namespace per core, or -d PCT% of the namespace (as spdk_nvme_perf)")
	f.StringVarP(&o.coreMask, "core-mask", "c", "", "cores to run workers on: hex mask (0x3) or list ([0,2-3]); default the first available core")
	f.StringArrayVarP(&o.trids, "transport", "r", nil, "transport ID of a controller, repeatable: 'trtype:PCIe traddr:0000:04:00.0', 'trtype:sim ...'")
	f.IntVarP(&o.qpairs, "num-qpairs", "P", 1, "queue pairs per namespace per core")
	f.IntVar(&o.ioQueueSize, "io-queue-size", 0, "I/O queue entries to ask for (clamped to the controller's MQES+1); default max(256, depth+1)")
	f.IntVarP(&o.maxCompletions, "max-completion-per-poll", "C", 0, "most completions one poll processes (0 = no limit)")
	f.Float64VarP(&o.zipf, "zipf", "F", 0, "zipf theta for random offsets (e.g. 0.8, 1.2); 0 = uniform")
	f.BoolVarP(&o.continueOnErr, "continue-on-error", "Q", false, "-Q N: count I/O errors and keep going, logging every Nth (bare -Q: every one); exit 0 unless the device fails")
	f.IntVarP(&o.align, "buffer-alignment", "A", 0, "align I/O buffers to exactly this many bytes (power of two ≥ 4; below 4096 gives an unaligned first PRP)")
	f.CountVarP(&o.latency, "enable-sw-latency-tracking", "L", "-L: latency summary at SPDK's cutoffs; -LL: also the bucket listing")
	f.StringVar(&o.outputFormat, "output-format", "text", "text, json, fio-json (fio's JSON layout), or text,json / text,fio-json with --json-output FILE")
	f.StringVar(&o.outputFile, "output", "", "write the report to this file instead of stdout")
	f.Uint64Var(&o.seed, "seed", 1, "seed for offsets, read/write choices and the verify pattern (reproducible runs)")
	f.StringVar(&o.doorbell, "doorbell", "per-poll", "when to ring the SQ doorbell: per-poll (batched), per-command, or N (every N submissions)")
	f.BoolVar(&o.verify, "verify", false, "write the verify pattern and check every read against it")
	f.BoolVar(&o.verifyRead, "verify-read", false, "read-only pass checking data written earlier with --verify (same --seed)")
	f.BoolVar(&o.allowDestruct, "allow-destructive", false, "allow writes to a kernel device holding a filesystem, partition table or mount")
	f.StringVar(&o.fileSize, "size", "", "size to create or extend a regular file target to (e.g. 1g)")
	f.BoolVar(&o.sqpoll, "sqpoll", false, "io_uring: kernel submission polling thread (SQPOLL)")
	f.BoolVar(&o.hipri, "hipri", false, "io_uring: polled completions (IOPOLL); needs poll queues on the device")
	f.BoolVar(&o.passthru, "passthru", false, "io_uring: send NVMe commands through /dev/ngXnY (automatic for /dev/ngXnY)")
	f.StringVarP(&o.ioUnitSize, "io-unit-size", "O", "", "userspace NVMe: send each I/O as commands of at most this many bytes (a multiple of the LBA size, at most -o); default the I/O size, split only where MDTS requires")
	f.StringVarP(&o.metadata, "metadata", "e", "", "userspace NVMe, namespaces with protection information: 'PRACT=0|1,PRCHK=GUARD|REFTAG|APPTAG' (as spdk_nvme_perf)")
	f.StringArrayVar(&o.labels, "label", nil, "key=value recorded in the JSON config (repeatable), e.g. --label ci_job=42")
	f.BoolVar(&o.quiet, "quiet", false, "no progress line or notices on stderr")
	a.registerCompatFlags(f)
	a.addResultsFlags(f)
	a.registerClusterFlags(f)
	a.registerPerfFlags(f)
	a.registerRecoveryFlags(f)
	o.set = func(name string) bool { return f.Changed(name) }
	root.AddCommand(a.listCommand(), a.verifyImageCommand())
	root.AddCommand(a.sweepCommand(), a.compareCommand(), a.mergeCommand(), a.reportCommand())
	root.AddCommand(a.serveCommand())
	a.addCLIManners(root)
	a.root = root
	return root
}

func (a *app) hook(phase string) {
	if a.phaseHook != nil {
		a.phaseHook(phase)
	}
}
