package main

// The run-time side of spdk_nvme_perf compatibility: SPDK's preamble, -d N%, --fua,
// --use-every-core, -Q N logging, -m CPU usage, --transport-stats, and the fio-json and
// text+JSON outputs.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/workload"
)

// compatTargets applies the options that need the opened targets to cfg, prints SPDK's
// preamble (text reports on stdout) and returns what to call when the run is over.
func (a *app) compatTargets(p *plan, targets []target.Target, cfg *workload.Config) (func(workload.Result), error) {
	c := &a.compat
	o := &a.opts
	for _, t := range targets {
		if c.fua && isKernel(t.Info().Transport) {
			return nil, usagef("--fua with %s: FUA is set on NVMe commands of the userspace driver (trtype PCIe or sim); kernel devices and files are not supported", t.Info().Name)
		}
	}
	cfg.FUA = c.fua
	cfg.EveryCore = c.everyCore
	workers := max(1, len(cfg.Cores))
	jobs := assignments(workers, len(targets), c.everyCore)
	if c.everyCore && o.set("number-ios") {
		cfg.NumIOs = o.numIOs * uint64(len(jobs))
	}
	var perJob []uint64
	if c.numIOsPercent > 0 {
		var total uint64
		for _, j := range jobs {
			info := targets[j.target].Info()
			n := info.Capacity / uint64(cfg.IOSize) * uint64(c.numIOsPercent) / 100
			if n == 0 {
				return nil, usagef("-d %d%%: %d%% of %s is less than one %d-byte I/O", c.numIOsPercent, c.numIOsPercent, info.Name, cfg.IOSize)
			}
			perJob = append(perJob, n)
			total += n
		}
		cfg.NumIOs = total
		for _, n := range perJob[1:] {
			if n != perJob[0] {
				a.notice("-d %d%%: the namespaces differ in size; the %d I/Os are split evenly over the %d (core, namespace) pairs", c.numIOsPercent, total, len(perJob))
				break
			}
		}
	}
	if o.set("continue-on-error") {
		every := uint64(max(1, c.quietCount))
		if workers > 1 && every > 1 {
			a.notice("error message rate-limiting is shared by all cores")
		}
		cfg.OnIOError = func(err error) {
			n := c.ioErrors.Add(1) - 1
			if n%every != 0 {
				return
			}
			prefix := ""
			if n > 0 && every > 1 {
				prefix = fmt.Sprintf("Message suppressed %d times: ", every-1)
			}
			fmt.Fprintf(a.stderr, "%snvmeperf: I/O error: %v\n", prefix, err)
		}
	}
	if p.format == "text" || strings.HasPrefix(p.format, "text,") {
		if o.outputFile == "" {
			a.preamble(targets, p, jobs, perJob)
		}
	}
	var cpuDone func()
	if c.cpuUsage {
		cpuDone = a.monitorCPU(p, cfg)
	}
	start := getUsage()
	return func(res workload.Result) {
		c.usage = usageDelta(getUsage(), start)
		if cpuDone != nil {
			cpuDone()
		}
		if c.transportStats && (p.format == "text" || strings.HasPrefix(p.format, "text,")) && o.outputFile == "" {
			writeTransportStats(a.stdout, res)
		}
	}, nil
}

// job is one (worker, target) pair in the engine's order (workload's assignment).
type jobPair struct{ worker, target int }

func assignments(workers, targets int, everyCore bool) []jobPair {
	var out []jobPair
	if everyCore {
		for w := 0; w < workers; w++ {
			for t := 0; t < targets; t++ {
				out = append(out, jobPair{w, t})
			}
		}
		return out
	}
	for i := 0; i < max(workers, targets); i++ {
		out = append(out, jobPair{i % workers, i % targets})
	}
	return out
}

// preamble prints spdk_nvme_perf's start-up lines.
func (a *app) preamble(targets []target.Target, p *plan, jobs []jobPair, perJob []uint64) {
	w := a.stdout
	fmt.Fprintln(w, "Initializing NVMe Controllers")
	seen := map[string]bool{}
	var pci map[string]string
	for _, t := range targets {
		info := t.Info()
		if isKernel(info.Transport) {
			continue
		}
		ctrl := controllerName(info)
		if seen[ctrl] {
			continue
		}
		seen[ctrl] = true
		if info.Transport == "PCIe" {
			if pci == nil {
				pci = a.pciIDs()
			}
			if id := pci[strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(ctrl, "PCIE ("), ")"))]; id != "" {
				ctrl += " [" + id + "]"
			}
		}
		fmt.Fprintf(w, "Attached to NVMe Controller at %s\n", ctrl)
	}
	for i, j := range jobs {
		core := 0
		if len(p.cores) > 0 {
			core = p.cores[j.worker]
		}
		name := targets[j.target].Info().Name
		fmt.Fprintf(w, "Associating %s with lcore %d\n", name, core)
		if perJob != nil {
			fmt.Fprintf(w, "number_ios for namespace %s set to %d (%d%% of namespace size)\n", name, perJob[i], a.compat.numIOsPercent)
		}
	}
	fmt.Fprintln(w, "Initialization complete. Launching workers.")
}

// controllerName is the namespace's name without " NSID n": "PCIE (0000:04:00.0)".
func controllerName(info target.Info) string {
	if i := strings.LastIndex(info.Name, " NSID "); i > 0 {
		return info.Name[:i]
	}
	return info.Name
}

// pciIDs maps PCI addresses to "vendor:device" for the Attached lines.
func (a *app) pciIDs() map[string]string {
	m := map[string]string{}
	ctrls, err := a.probe()
	if err != nil {
		return m
	}
	for _, c := range ctrls {
		m[strings.ToLower(c.Address)] = fmt.Sprintf("%04x:%04x", c.VendorID, c.DeviceID)
	}
	return m
}

// writeTransportStats prints each job's queue counters as spdk_nvme_perf
// --transport-stats prints a PCIe poll group's.
func writeTransportStats(w io.Writer, res workload.Result) {
	for _, j := range res.Jobs {
		if j.Transport == nil {
			continue
		}
		s := j.Transport
		fmt.Fprintf(w, "\n====================\n")
		fmt.Fprintf(w, "lcore %d, ns %s statistics:\n", max(0, j.Core), j.Target.Name)
		if j.Target.Transport == "TCP" {
			// SPDK's TCP layout; a socket completion is a poll that reaped completions.
			fmt.Fprintf(w, "TCP transport:\n")
			fmt.Fprintf(w, "\tpolls:              %d\n", s.Polls)
			fmt.Fprintf(w, "\tidle_polls:         %d\n", s.IdlePolls)
			fmt.Fprintf(w, "\tsock_completions:   %d\n", s.CQDoorbells)
			fmt.Fprintf(w, "\tnvme_completions:   %d\n", s.Completions)
			fmt.Fprintf(w, "\tsubmitted_requests: %d\n", s.Submitted)
			fmt.Fprintf(w, "\tqueued_requests:    %d\n", s.Queued)
			continue
		}
		fmt.Fprintf(w, "PCIE transport:\n")
		fmt.Fprintf(w, "\tpolls:               %d\n", s.Polls)
		fmt.Fprintf(w, "\tidle_polls:          %d\n", s.IdlePolls)
		fmt.Fprintf(w, "\tcompletions:         %d\n", s.Completions)
		fmt.Fprintf(w, "\tcq_mmio_doorbell_updates: %d\n", s.CQDoorbells)
		fmt.Fprintf(w, "\tcq_shadow_doorbell_updates: %d\n", s.CQShadowUpdates)
		fmt.Fprintf(w, "\tsubmitted_requests:  %d\n", s.Submitted)
		fmt.Fprintf(w, "\tsq_mmio_doorbell_updates:  %d\n", s.SQDoorbells)
		fmt.Fprintf(w, "\tsq_shadow_doorbell_updates:  %d\n", s.SQShadowUpdates)
		fmt.Fprintf(w, "\tqueued_requests:     %d\n", s.Queued)
		fmt.Fprintf(w, "\tshadow_doorbell_skips: %d\n", s.ShadowSkips) // not in SPDK's layout
		fmt.Fprintf(w, "\tsq_in_cmb:           %d\n", s.SQInCMB)       // queue pairs with the SQ in the CMB; not in SPDK's layout
	}
}

// cpuSample is the busy and total jiffies of a set of CPUs (/proc/stat).
type cpuSample struct{ busy, total uint64 }

func readCPU(cores []int) (cpuSample, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuSample{}, err
	}
	defer f.Close()
	want := map[string]bool{}
	for _, c := range cores {
		want["cpu"+strconv.Itoa(c)] = true
	}
	var s cpuSample
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || !want[fields[0]] {
			continue
		}
		var vals []uint64
		for _, v := range fields[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			vals = append(vals, n)
		}
		var total uint64
		for i, v := range vals {
			if i >= 8 { // guest time is already in user and nice
				break
			}
			total += v
		}
		idle := vals[3]
		if len(vals) > 4 {
			idle += vals[4] // iowait
		}
		s.busy += total - idle
		s.total += total
	}
	return s, sc.Err()
}

func (s cpuSample) busyPercent(since cpuSample) float64 {
	if s.total <= since.total {
		return 0
	}
	return float64(s.busy-since.busy) * 100 / float64(s.total-since.total)
}

// monitorCPU implements -m: the busy share of the used cores appended to the live
// progress line, and once for the whole run on stderr at the end.
func (a *app) monitorCPU(p *plan, cfg *workload.Config) func() {
	cores := p.cores
	if len(cores) == 0 {
		cores = allowedCPUs()
	}
	start, err := readCPU(cores)
	if err != nil {
		a.notice("-m: cannot read CPU usage: %v", err)
		return func() {}
	}
	last := start
	if prev := cfg.Progress; prev != nil {
		cfg.Progress = func(pr workload.Progress) {
			prev(pr)
			if now, err := readCPU(cores); err == nil {
				fmt.Fprintf(a.stderr, " %3d Core(s): %6.2f%% Busy", len(cores), now.busyPercent(last))
				last = now
			}
			writeWorkerLoad(a.stderr, pr.Workers)
		}
	}
	begin := time.Now()
	return func() {
		end, err := readCPU(cores)
		if err != nil || time.Since(begin) <= 0 {
			return
		}
		fmt.Fprintf(a.stderr, "nvmeperf: -m: %3d Core(s): %6.2f%% Busy over the run\n", len(cores), end.busyPercent(start))
	}
}

// writeWorkerLoad appends each worker thread's own CPU use (-m): the core's busy share
// above counts everything on the core, this only nvmeperf's worker.
func writeWorkerLoad(w io.Writer, loads []workload.WorkerLoad) {
	if len(loads) == 0 {
		return
	}
	fmt.Fprint(w, "; worker threads:")
	for _, l := range loads {
		fmt.Fprintf(w, " core %d %.0f%% usr %.0f%% sys", l.Core, l.UserPercent, l.SystemPercent)
	}
}

// processUsage is getrusage(RUSAGE_SELF) for fio's usr_cpu, sys_cpu and ctx.
type processUsage = report.ProcessUsage

func getUsage() processUsage {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return processUsage{}
	}
	return processUsage{
		User:            time.Duration(ru.Utime.Nano()),
		System:          time.Duration(ru.Stime.Nano()),
		ContextSwitches: uint64(ru.Nvcsw + ru.Nivcsw),
		MajorFaults:     uint64(ru.Majflt),
		MinorFaults:     uint64(ru.Minflt),
	}
}

func usageDelta(end, start processUsage) processUsage {
	return processUsage{
		User: end.User - start.User, System: end.System - start.System,
		ContextSwitches: end.ContextSwitches - start.ContextSwitches,
		MajorFaults:     end.MajorFaults - start.MajorFaults, MinorFaults: end.MinorFaults - start.MinorFaults,
	}
}

// writeFioReport writes the fio-json report (format fio-json) to w.
func (a *app) writeFioReport(w io.Writer, meta report.Meta, res workload.Result) error {
	return report.WriteFioJSON(w, report.BuildFio(meta, res, a.compat.usage))
}

// writeJSONSide writes the JSON half of --output-format text,json / text,fio-json to
// --json-output.
func (a *app) writeJSONSide(meta report.Meta, p *plan, res workload.Result, v report.Verdict) error {
	kind, ok := strings.CutPrefix(p.format, "text,")
	if !ok {
		return nil
	}
	o := a.sideOutput("--json-output")
	if o == nil {
		return fmt.Errorf("--json-output was not opened before the run")
	}
	return o.write(func(w io.Writer) error {
		if kind == "fio-json" {
			return a.writeFioReport(w, meta, res)
		}
		return report.WriteJSON(w, report.BuildVerdict(meta, res, v))
	})
}
