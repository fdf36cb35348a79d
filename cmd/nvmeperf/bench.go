package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver"
	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/driver/trid"
	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/workload"
)

// bench runs the benchmark the flags describe. Its order is what keeps data safe and
// the verdict honest: every check that can refuse the command line (flags, transport
// IDs, what may be written) runs before anything is opened; the report file is opened
// and checked before any target; targets are opened before any I/O; a signal at any
// of these phases still ends in a report with status interrupted.
func (a *app) bench(_ *cobra.Command, args []string) error {
	ctx, stop := a.runContext() // a sweep's or --repeat's context, else one that signals cancel
	defer stop()

	if err := a.compatBefore(); err != nil {
		return err
	}
	if err := a.recoveryBefore(); err != nil { // recovery.go
		return err
	}
	allowed := allowedCPUs()
	p, err := a.opts.validate(allowed)
	if err != nil {
		return err
	}
	if err := a.clusterBefore(p); err != nil {
		return err
	}
	ids, err := a.parseTRIDs(p)
	if err != nil {
		return err
	}
	var fileSize int64
	if a.opts.fileSize != "" {
		if fileSize, err = parseSize("--size", a.opts.fileSize); err != nil {
			return err
		}
	}
	if err := a.checkKernelTargets(p, args, fileSize); err != nil {
		return err
	}
	meta := a.meta(p)
	if err := a.openOutput(); err != nil {
		return err
	}
	if err := a.openCPUProfile(); err != nil {
		return err
	}

	a.hook("open")
	targets, err := a.openTargets(p, ids, args, fileSize)
	if err != nil {
		// JSON: the failure document goes where the report would have (--output was
		// checked); text: a report file this run created stays empty, so it goes.
		a.writeFailure(meta, p, report.Verdict{Status: report.StatusError + ": " + err.Error(), Error: err.Error(), Exit: exitFailed})
		a.removeCreatedOutput()
		return err
	}
	var runErr error
	ran := false
	defer func() {
		for _, t := range targets {
			if err := t.Close(); err != nil {
				a.notice("closing %s: %v", t.Info().Name, err)
			}
		}
		if !ran {
			// No I/O was done (a refusal found late, or a signal while opening): the
			// files this run created for --size go again.
			a.removeCreatedTargets(targets)
		}
	}()
	if err := a.checkOutputAgainst(args); err != nil {
		runErr = err
		return err
	}
	for _, t := range targets {
		meta.Config.Targets = append(meta.Config.Targets, targetLabel(t.Info()))
		if lba := int(t.Info().LBASize); p.cfg.IOUnitSize > 0 && lba > 0 && p.cfg.IOUnitSize%lba != 0 {
			err := usagef("-O %s: io unit size must be a multiple of the LBA size; %s has %d-byte blocks", a.opts.ioUnitSize, t.Info().Name, lba)
			runErr = err
			return err // a usage error: run() writes its JSON document to stdout
		}
	}

	cfg := p.cfg
	a.recoveryConfig(&cfg, targets) // recovery.go
	if a.opts.set("number-ios") {
		// spdk_nvme_perf's -d counts I/Os per namespace per core; the engine takes a
		// total that it splits evenly over the jobs.
		jobs := uint64(max(len(targets), max(1, len(cfg.Cores))))
		hi, total := bits.Mul64(a.opts.numIOs, jobs)
		if hi != 0 {
			runErr = usagef("-d %d: I/Os per namespace per core times %d jobs (namespaces × cores) exceeds 2^64-1; the largest -d for this run is %d",
				a.opts.numIOs, jobs, math.MaxUint64/jobs)
			return runErr
		}
		cfg.NumIOs = total
	}
	if isTerminal(a.stderr) && !a.opts.quiet {
		cfg.Progress = a.progressLine
	} else if a.results.statusInterval > 0 && !a.opts.quiet {
		cfg.Progress = a.statusLines()
	}
	if h := a.results.hooks; h != nil {
		cfg.Progress = h.progress
	}
	finish, err := a.compatTargets(p, targets, &cfg)
	if err != nil {
		return err
	}

	a.hook("run")
	var res workload.Result
	if ctx.Err() != nil {
		// Interrupted while the targets were opening: no I/O was done.
		res = workload.Result{Start: time.Now(), Interrupted: true}
	} else {
		ran = true
		stopProfile := a.startCPUProfile()
		res = workload.Run(ctx, targets, cfg)
		if err := stopProfile(); err != nil {
			a.notice("%v", err)
		}
	}
	if ran {
		finish(res)
		a.recoveryAfter(&meta) // recovery.go
	}
	if cfg.Progress != nil && isTerminal(a.stderr) {
		fmt.Fprint(a.stderr, "\r\033[K")
	}
	v := report.Judge(report.Facts{
		Result:          res,
		ContinueOnError: p.cfg.ContinueOnError,
		Verify:          p.cfg.Verify,
		DeviceFailed:    res.Err != nil && errors.Is(res.Err, nvme.ErrFailed),
	})
	a.status = v.Exit
	return a.writeReport(meta, p, res, v)
}

func (a *app) meta(p *plan) report.Meta {
	c := p.cfg
	return report.Meta{
		Version:     version,
		CommandLine: a.args,
		Host:        a.clusterHost(report.HostInfo()),
		Config: report.Config{
			Workload: c.Pattern.String(), ReadPercent: c.ReadPercent, QueueDepth: c.QueueDepth,
			IOSize: c.IOSize, Seconds: c.Duration.Seconds(), WarmupSeconds: c.Warmup.Seconds(),
			NumIOs: a.opts.numIOs, CoreMask: p.mask, Cores: p.cores, QPairsPerNS: max(1, c.QPairsPerTarget),
			IOQueueSize: c.QueueSize, MaxCompletions: c.MaxCompletions, ZipfTheta: c.ZipfTheta,
			ContinueOnError: c.ContinueOnError, BufferAlign: c.BufferAlign, Seed: c.Seed,
			Doorbell: c.Doorbell.String(), DoorbellN: c.DoorbellN, Verify: c.Verify != workload.VerifyOff,
			Labels: p.labels, StartAt: a.cluster.startAt, Barrier: a.cluster.barrier,
		},
		Percentiles: a.results.percents,
	}
}

// writeReport writes the text or JSON report to stdout or --output, and says on stderr
// (in either format) when the run is not ok.
func (a *app) writeReport(meta report.Meta, p *plan, res workload.Result, v report.Verdict) error {
	return a.writeReportTo(meta, p, res, v, true)
}

// writeReportTo is writeReport; announce false leaves the stderr line to the caller
// (a run that never started says its error once).
func (a *app) writeReportTo(meta report.Meta, p *plan, res workload.Result, v report.Verdict, announce bool) error {
	w := a.reportWriter()
	var err error
	if h := a.results.hooks; h != nil {
		// A sweep point or a --repeat repetition: the caller keeps the document.
		h.capture(report.BuildVerdict(meta, res, v))
		a.reportWritten = true
		return nil
	}
	if p.format == "json" {
		err = report.WriteJSON(w, report.BuildVerdict(meta, res, v))
	} else if p.format == "fio-json" {
		err = a.writeFioReport(w, meta, res)
	} else {
		err = report.WriteText(w, res, report.TextOptions{
			LatencySummary: p.latency >= 1, Buckets: p.latency >= 2, Mixed: p.cfg.Pattern.Mixed(),
			Recovery: a.recoveryText(meta), // recovery.go
		})
		if err == nil {
			err = a.writeJSONSide(meta, p, res, v)
		}
	}
	a.reportWritten = true
	if !v.OK() && announce {
		fmt.Fprintf(a.stderr, "nvmeperf: run status: %s\n", v.OneLine())
	}
	if cerr := a.closeOutput(); err == nil {
		err = cerr
	}
	if err != nil && a.opts.outputFile != "" {
		return fmt.Errorf("--output %s: %w", a.opts.outputFile, err)
	}
	return err
}

// writeFailure writes a JSON document for a run that could not start, so that a CI
// consumer always gets one.
func (a *app) writeFailure(meta report.Meta, p *plan, v report.Verdict) {
	if p.format != "json" {
		return
	}
	_ = a.writeReportTo(meta, p, workload.Result{Start: time.Now()}, v, false)
}

// writeFailureJSON is writeFailure for usage errors: the document goes to stdout, since
// --output may be the very thing that was refused.
func (a *app) writeFailureJSON(v report.Verdict) {
	if !a.jsonAsked() || a.reportWritten {
		return
	}
	a.removeCreatedOutput()
	a.closeOutput()
	meta := report.Meta{Version: version, CommandLine: a.args, Host: report.HostInfo()}
	_ = report.WriteJSON(a.stdout, report.BuildVerdict(meta, workload.Result{Start: time.Now()}, v))
}

// openTargets opens the -r transport IDs and the kernel devices; with neither it probes
// for local controllers and falls back to the simulated one.
func (a *app) openTargets(p *plan, ids []trid.ID, paths []string, fileSize int64) ([]target.Target, error) {
	dopts := driver.Options{SimCPUs: simCPUs(p.cores)}
	a.compatDriverOptions(&dopts)
	a.recoveryDriverOptions(&dopts) // recovery.go
	if len(ids) == 0 && len(paths) == 0 {
		var err error
		if ids, err = a.defaultTargets(); err != nil {
			return nil, err
		}
	}
	var targets []target.Target
	fail := func(err error) ([]target.Target, error) {
		for _, t := range targets {
			t.Close()
		}
		a.removeCreatedTargets(targets)
		return nil, err
	}
	for _, id := range ids {
		ts, ctrl, err := driver.OpenTRID(id.String(), dopts)
		if err != nil {
			return fail(fmt.Errorf("-r %s: %w", id, err))
		}
		targets = append(targets, ts...)
		if err := a.openUnusedQPairs(ctrl); err != nil {
			return fail(err)
		}
	}
	for _, path := range paths {
		t, err := a.openKernel(path, p, fileSize)
		if err != nil {
			return fail(err)
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// defaultTargets is what runs when no target is named: every controller bound for
// userspace; an explanation when NVMe exists but belongs to the kernel; the simulated
// controller when there is no NVMe at all.
func (a *app) defaultTargets() ([]trid.ID, error) {
	ctrls, err := a.probe()
	if err != nil {
		ctrls = nil // no sysfs PCI view (containers): treat as no NVMe
	}
	var ids []trid.ID
	var kernel []string
	for _, c := range ctrls {
		if !a.pciAllowed(c.Address) {
			continue // -b
		}
		if c.Userspace() {
			id, err := trid.Parse("trtype:PCIe traddr:" + c.Address)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		} else {
			desc := c.Address + " (driver " + orNone(c.Driver)
			if len(c.BlockDevices) > 0 {
				desc += ", " + strings.Join(prefixAll("/dev/", c.BlockDevices), " ")
			}
			kernel = append(kernel, desc+")")
		}
	}
	if len(ids) > 0 {
		return ids, nil
	}
	if len(kernel) > 0 {
		return nil, fmt.Errorf("NVMe controllers found, but none is bound for userspace: %s.\n"+
			"  To use the userspace driver, bind them (this detaches them from the kernel): sudo scripts/setup.sh\n"+
			"  To measure through the kernel instead, name the device: nvmeperf ... /dev/nvme0n1\n"+
			"  To try nvmeperf without hardware: nvmeperf ... -r 'trtype:sim'", strings.Join(kernel, "; "))
	}
	a.notice("no NVMe controller found: running on the built-in simulated controller (trtype:sim, null model); name one with -r")
	id, err := trid.Parse("trtype:sim")
	if err != nil {
		return nil, err
	}
	return []trid.ID{id}, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func prefixAll(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
}

func targetLabel(i target.Info) string {
	if i.TRID != "" {
		return i.TRID
	}
	return i.Name
}

// interruptible returns a context cancelled by the first Ctrl-C (or SIGTERM, SIGHUP): the run
// stops submitting, drains and reports. A second one exits at once.
func (a *app) interruptible() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP) // SIGHUP: a lost terminal still gets --output written
	done := make(chan struct{})
	var once sync.Once
	go func() {
		select {
		case <-sigs:
			a.notice("interrupted: stopping and reporting what was measured (Ctrl-C again to exit at once, without a report)")
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			fmt.Fprintln(a.stderr, "nvmeperf: interrupted twice: exiting without a report")
			os.Exit(exitSignal2) // the documented escape hatch: no report, at once
		case <-done:
		}
	}()
	return ctx, func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(done)
			cancel()
		})
	}
}

func (a *app) progressLine(pr workload.Progress) {
	phase := "run"
	if pr.Warmup {
		phase = "warm-up"
	}
	rem := ""
	if pr.Remaining > 0 {
		rem = fmt.Sprintf(", %s left", pr.Remaining.Round(time.Second))
	}
	rate := "rate pending" // no window of workload.MinRateWindow yet in this phase
	if pr.IOPS > 0 {
		rate = fmt.Sprintf("%.0f IOPS, %.1f MiB/s", pr.IOPS, pr.MiBps)
	}
	fmt.Fprintf(a.stderr, "\r\033[K[%s %s%s] %s, %d I/Os",
		phase, pr.Elapsed.Round(time.Second), rem, rate, pr.IOs)
}

func (a *app) notice(format string, args ...any) {
	if a.opts.quiet {
		return
	}
	fmt.Fprintf(a.stderr, "nvmeperf: "+format+"\n", args...)
}

// allowedCPUs is the process's CPU affinity set, sorted.
func allowedCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		cpus := make([]int, runtime.NumCPU())
		for i := range cpus {
			cpus[i] = i
		}
		return cpus
	}
	var cpus []int
	for c := 0; c < 1024; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	sort.Ints(cpus)
	return cpus
}

// simCPUs are the CPUs left for a simulated controller's device thread: those no
// worker runs on. With none left, the device thread is not pinned.
func simCPUs(workers []int) []int {
	used := map[int]bool{}
	for _, c := range workers {
		used[c] = true
	}
	var free []int
	for _, c := range allowedCPUs() {
		if !used[c] {
			free = append(free, c)
		}
	}
	if len(free) > 1 {
		free = free[len(free)-1:] // the last free core, away from worker 0's neighbours
	}
	return free
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
