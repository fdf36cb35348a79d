package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// Statuses beyond those package report defines.
const statusVerifyFailed = "verify_failed"

// bench runs the benchmark the flags describe.
func (a *app) bench(_ *cobra.Command, args []string) error {
	if err := a.compatBefore(); err != nil {
		return err
	}
	allowed := allowedCPUs()
	p, err := a.opts.validate(allowed)
	if err != nil {
		return err
	}
	var ids []trid.ID
	for _, s := range a.opts.trids {
		id, err := trid.Parse(s)
		if err != nil {
			return usagef("-r %q: %v", s, err)
		}
		ids = append(ids, id)
	}
	var fileSize int64
	if a.opts.fileSize != "" {
		if fileSize, err = parseSize("--size", a.opts.fileSize); err != nil {
			return err
		}
	}
	if err := checkOutputPath("--cpuprofile", a.perf.cpuProfile, args); err != nil {
		return err
	}
	meta := a.meta(p)

	targets, err := a.openTargets(p, ids, args, fileSize)
	if err != nil {
		a.writeFailure(meta, p, "error: "+err.Error())
		return err
	}
	defer func() {
		for _, t := range targets {
			if err := t.Close(); err != nil {
				a.notice("closing %s: %v", t.Info().Name, err)
			}
		}
	}()
	for _, t := range targets {
		meta.Config.Targets = append(meta.Config.Targets, targetLabel(t.Info()))
	}

	cfg := p.cfg
	if a.opts.set("number-ios") {
		// spdk_nvme_perf's -d counts I/Os per namespace per core; the engine takes a
		// total that it splits evenly over the jobs.
		cfg.NumIOs = a.opts.numIOs * uint64(max(len(targets), max(1, len(cfg.Cores))))
	}
	if isTerminal(a.stderr) && !a.opts.quiet {
		cfg.Progress = a.progressLine
	}
	finish, err := a.compatTargets(p, targets, &cfg)
	if err != nil {
		return err
	}

	stopProfile, err := a.startCPUProfile()
	if err != nil {
		return err
	}
	ctx, stop := a.interruptible()
	defer stop()
	res := workload.Run(ctx, targets, cfg)
	if err := stopProfile(); err != nil {
		a.notice("%v", err)
	}
	finish(res)
	if cfg.Progress != nil {
		fmt.Fprint(a.stderr, "\r\033[K")
	}
	status, code := a.outcome(res)
	a.status = code
	return a.writeReport(meta, p, res, status)
}

// outcome decides the JSON status and the exit status of a finished run.
func (a *app) outcome(res workload.Result) (string, int) {
	var ioErrors, mismatches uint64
	for _, j := range res.Jobs {
		ioErrors += j.Read.Errors + j.Write.Errors
		mismatches += j.Verify.Mismatched
	}
	switch {
	case res.Err != nil && errors.Is(res.Err, nvme.ErrFailed):
		return report.StatusDeviceFailed + ": " + res.Err.Error(), exitFailed
	case res.Err != nil && ioErrors > 0:
		return report.StatusIOErrors, exitFailed
	case res.Err != nil:
		return report.StatusError + ": " + res.Err.Error(), exitFailed
	case mismatches > 0:
		return statusVerifyFailed, exitFailed
	case res.Interrupted:
		return report.StatusInterrupted, exitSignal2
	case ioErrors > 0 && !a.opts.continueOnErr:
		return report.StatusIOErrors, exitFailed
	}
	return report.StatusOK, exitOK
}

func (a *app) meta(p *plan) report.Meta {
	c := p.cfg
	return report.Meta{
		Version:     version,
		CommandLine: a.args,
		Host:        report.HostInfo(),
		Config: report.Config{
			Workload: c.Pattern.String(), ReadPercent: c.ReadPercent, QueueDepth: c.QueueDepth,
			IOSize: c.IOSize, Seconds: c.Duration.Seconds(), WarmupSeconds: c.Warmup.Seconds(),
			NumIOs: a.opts.numIOs, CoreMask: p.mask, Cores: p.cores, QPairsPerNS: max(1, c.QPairsPerTarget),
			IOQueueSize: c.QueueSize, MaxCompletions: c.MaxCompletions, ZipfTheta: c.ZipfTheta,
			ContinueOnError: c.ContinueOnError, BufferAlign: c.BufferAlign, Seed: c.Seed,
			Doorbell: c.Doorbell.String(), DoorbellN: c.DoorbellN, Verify: c.Verify != workload.VerifyOff,
			Labels: p.labels,
		},
	}
}

// writeReport writes the text or JSON report to stdout or --output.
func (a *app) writeReport(meta report.Meta, p *plan, res workload.Result, status string) error {
	w, closeOut, err := a.output()
	if err != nil {
		return err
	}
	if p.format == "json" {
		err = report.WriteJSON(w, report.Build(meta, res, status))
	} else if p.format == "fio-json" {
		err = a.writeFioReport(w, meta, res)
	} else {
		err = report.WriteText(w, res, report.TextOptions{
			LatencySummary: p.latency >= 1, Buckets: p.latency >= 2, Mixed: p.cfg.Pattern.Mixed(),
		})
		if err == nil && status != report.StatusOK {
			fmt.Fprintf(a.stderr, "nvmeperf: run status: %s\n", status)
		}
		if err == nil {
			err = a.writeJSONSide(meta, p, res, status)
		}
	}
	if cerr := closeOut(); err == nil {
		err = cerr
	}
	return err
}

func (a *app) output() (io.Writer, func() error, error) {
	if a.opts.outputFile == "" {
		return a.stdout, func() error { return nil }, nil
	}
	f, err := os.Create(a.opts.outputFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--output %s: %w", a.opts.outputFile, err)
	}
	return f, f.Close, nil
}

// writeFailure writes a JSON document for a run that could not start, so that a CI
// consumer always gets one.
func (a *app) writeFailure(meta report.Meta, p *plan, status string) {
	if p.format != "json" {
		return
	}
	_ = a.writeReport(meta, p, workload.Result{Start: time.Now()}, status)
}

// writeFailureJSON is writeFailure for usage errors, when no plan exists.
func (a *app) writeFailureJSON(status string) {
	if strings.ToLower(a.opts.outputFormat) != "json" {
		return
	}
	p := &plan{format: "json"}
	meta := report.Meta{Version: version, CommandLine: a.args, Host: report.HostInfo()}
	a.writeFailure(meta, p, report.StatusError+": "+status)
}

// openTargets opens the -r transport IDs and the kernel devices; with neither it probes
// for local controllers and falls back to the simulated one.
func (a *app) openTargets(p *plan, ids []trid.ID, paths []string, fileSize int64) ([]target.Target, error) {
	dopts := driver.Options{SimCPUs: simCPUs(p.cores)}
	a.compatDriverOptions(&dopts)
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

// interruptible returns a context cancelled by the first Ctrl-C (or SIGTERM): the run
// stops submitting, drains and reports. A second one exits at once.
func (a *app) interruptible() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var once sync.Once
	go func() {
		select {
		case <-sigs:
			a.notice("interrupted: draining in-flight I/O and reporting what was measured (Ctrl-C again to exit at once)")
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			fmt.Fprintln(a.stderr, "nvmeperf: interrupted twice: exiting without a report")
			os.Exit(exitSignal2)
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
	fmt.Fprintf(a.stderr, "\r\033[K[%s %s%s] %.0f IOPS, %.1f MiB/s, %d I/Os",
		phase, pr.Elapsed.Round(time.Second), rem, pr.IOPS, pr.MiBps, pr.IOs)
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
