package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/report/plot"
	"github.com/nvmeperf/nvmeperf/sweep"
	"github.com/nvmeperf/nvmeperf/workload"
)

const sweepHelp = `sweep runs the cartesian product of the values given to -q, -P, -o, -w, -M and
--cores, one complete run per point (with -a warm-up each), and reports an IOPS and a p99
matrix (rows queue depth, columns qpairs) per I/O size and pattern, or with
--output-format json one nvmeperf.sweep/v1 document holding every point's full result.

It takes every flag of a run. These take comma lists and power-of-two ranges:
  -q, --io-depth     1,2,4,8 or 1-256 (1, 2, 4, ..., 256)
  -P, --num-qpairs   queue pairs per namespace per worker: 1,2,4
  -o, --io-size      4k,128k or 4k-1m
  -w, --io-pattern   randread,randwrite
  -M, --rwmixread    70,100 (for rw and randrw)
  --cores N,...      numbers of pinned workers to try (qpairs = workers x -P), taken
                     from the -c cores in order (default: the cores available)
Sweep outputs:
  --csv FILE                 one row per point (params, IOPS, MiB/s, mean, p50, p99, p99.9,
                             p99.99 in ns, errors)
  --plot DIR                 iops.svg (IOPS vs queue depth) and latency.svg (p50/p99/p99.9
                             vs IOPS); --plot-format svg|png
  --repeat N                 every point N times: median and 95% CI per metric in the JSON
A point that fails keeps its parameters and error and the sweep goes on; Ctrl-C stops after
the current point and reports the finished ones. Exit status 0 when every point ran, 1
when one failed, 2 for usage errors, 130 when interrupted.`

// sweepListFlags are the run flags a sweep takes lists for: long name, shorthand.
var sweepListFlags = []struct{ long, short string }{
	{"io-depth", "q"}, {"num-qpairs", "P"}, {"io-size", "o"}, {"io-pattern", "w"}, {"rwmixread", "M"},
	{"cores", ""}, {"csv", ""}, {"plot", ""}, {"plot-format", ""},
}

func (a *app) sweepCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "sweep -q LIST -o LIST -w LIST -t SECONDS [-P LIST] [-M LIST] [--cores LIST] [run flags]",
		Short: "Run a sweep of queue depths, qpairs, workers, sizes and patterns; matrices, CSV, plots",
		Long:  sweepHelp,
		Example: `  nvmeperf sweep -q 1-128 -P 1,2 -o 4k -w randread -t 5 -a 1 -r 'trtype:sim model:nand' --plot plots
  nvmeperf sweep -q 1,4,16,64 -o 4k,128k -w randread,randwrite -t 10 --output-format json > sweep.json
  nvmeperf sweep -q 32 --cores 1,2,4 -o 4k -w randread -t 10 -c 0-3 --csv sweep.csv`,
		// The run flags are parsed per point by the root command's own flag set, so a
		// sweep takes every run flag there is; only the list flags are read here.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, x := range args {
				if x == "-h" || x == "--help" {
					return cmd.Help()
				}
			}
			return a.sweep(args)
		},
	}
}

// splitSweepArgs separates the sweep's list flags from the run flags.
func splitSweepArgs(args []string) (lists map[string]string, common []string, err error) {
	lists = map[string]string{}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		matched := false
		for _, f := range sweepListFlags {
			var val string
			var ok bool
			switch {
			case arg == "--"+f.long || (f.short != "" && arg == "-"+f.short):
				if i+1 >= len(args) {
					return nil, nil, usagef("%s needs a value", arg)
				}
				i++
				val, ok = args[i], true
			case strings.HasPrefix(arg, "--"+f.long+"="):
				val, ok = strings.TrimPrefix(arg, "--"+f.long+"="), true
			case f.short != "" && strings.HasPrefix(arg, "-"+f.short) && !strings.HasPrefix(arg, "--") && len(arg) > 2:
				val, ok = strings.TrimPrefix(strings.TrimPrefix(arg, "-"+f.short), "="), true
			}
			if ok {
				if _, dup := lists[f.long]; dup {
					return nil, nil, usagef("--%s given twice: give one list, e.g. -q 1,2,4", f.long)
				}
				lists[f.long] = val
				matched = true
				break
			}
		}
		if !matched {
			common = append(common, arg)
		}
	}
	return lists, common, nil
}

// sweepPoint is one planned point with its parsed run.
type sweepPoint struct {
	sweep.Point
	app  *app
	plan *plan
	args []string // the point's run flags and arguments
}

func (a *app) sweep(rawArgs []string) error {
	lists, common, err := splitSweepArgs(rawArgs)
	if err != nil {
		return err
	}
	// The template parses the run flags once: output choices, -c, labels, quiet.
	tmpl, err := a.parseRun(common)
	if err != nil {
		return err
	}
	a.opts.quiet = tmpl.opts.quiet
	a.opts.outputFormat = tmpl.opts.outputFormat
	format := strings.ToLower(tmpl.opts.outputFormat)
	if format != "text" && format != "json" {
		return usagef("--output-format %q: want text or json", tmpl.opts.outputFormat)
	}
	plotFormat := strings.ToLower(lists["plot-format"])
	if plotFormat == "" {
		plotFormat = "svg"
	}
	if plotFormat != "svg" && plotFormat != "png" {
		return usagef("--plot-format %q: want svg or png", lists["plot-format"])
	}
	axes, coreSets, err := sweepAxes(lists, tmpl)
	if err != nil {
		return err
	}
	allowed := allowedCPUs()
	var points []*sweepPoint
	for _, pt := range axes.Points() {
		pa := []string{
			"-q", strconv.Itoa(pt.Params.QueueDepth), "-P", strconv.Itoa(pt.QPairsPerNS),
			"-o", strconv.Itoa(pt.Params.IOSize), "-w", pt.Params.Pattern,
		}
		if pt.Params.Pattern == "rw" || pt.Params.Pattern == "randrw" {
			pa = append(pa, "-M", strconv.Itoa(pt.Params.ReadPercent))
		}
		if cores, ok := coreSets[pt.Params.Workers]; ok {
			pa = append(pa, "-c", cores)
		}
		runArgs := append(append([]string{}, common...), pa...)
		run, err := a.parseRun(runArgs)
		if err != nil {
			return err
		}
		p, err := run.opts.validate(allowed)
		if err != nil {
			return fmt.Errorf("point %s: %w", pt.Params, err)
		}
		if err := run.clusterUsage(true); err != nil {
			return err
		}
		// The worker count the run will have, when --cores did not set it.
		if _, ok := coreSets[pt.Params.Workers]; !ok {
			pt.Params.Workers = max(1, len(p.cores))
			pt.Params.QPairs = pt.Params.Workers * pt.QPairsPerNS
		}
		points = append(points, &sweepPoint{Point: pt, app: run, plan: p, args: runArgs})
	}
	if len(points) == 0 {
		return usagef("the sweep has no point: every -P exceeds every -q")
	}
	// Every output is checked now, not after an hour of measuring.
	if err := checkOutputs([]outputPath{
		{flag: "--output", path: tmpl.opts.outputFile},
		{flag: "--csv", path: lists["csv"]},
		{flag: "--plot", path: lists["plot"], files: plotFiles(plotFormat, true)},
	}, tmpl.root.Flags().Args()); err != nil {
		return err
	}

	doc := &report.SweepDocument{
		Version: version, CommandLine: nonNilArgs(a.args), Host: report.HostInfo(),
		StartTime: time.Now().UTC().Format(time.RFC3339), Config: axes.Config(tmpl.results.repeat, points[0].plan.labels),
	}
	for i, p := range points { // --cores may not be in the axes when the template set them
		if i == 0 {
			doc.Config.Workers = nil
		}
		if !containsInt(doc.Config.Workers, p.Params.Workers) {
			doc.Config.Workers = append(doc.Config.Workers, p.Params.Workers)
		}
	}
	ctx, stop := a.interruptible()
	defer stop()
	obs := &sweepProgress{a: a, points: points, terminal: isTerminal(a.stderr) && !a.opts.quiet, start: time.Now()}
	plain := make([]sweep.Point, len(points))
	for i, p := range points {
		plain[i] = p.Point
	}
	sweep.Run(ctx, doc, plain, func(ctx context.Context, i int, _ sweep.Point) (*report.Document, error) {
		sp := points[i]
		d, _, err := a.measureRepeated(ctx, sp.args, tmpl.results.repeat, obs.progress(i), nil)
		return d, err
	}, obs)
	obs.clear()

	switch {
	case doc.Interrupted:
		a.status = exitSignal2
	case doc.Status != report.SweepOK:
		a.status = exitFailed
	}
	var outErr error
	if lists["csv"] != "" {
		outErr = writeFileWith(lists["csv"], "--csv", func(w io.Writer) error { return report.WriteCSV(w, doc) })
	}
	if dir := lists["plot"]; dir != "" && outErr == nil {
		paths, err := plot.WriteSweep(dir, plotFormat, doc)
		if err != nil {
			outErr = fmt.Errorf("--plot %s: %w", dir, err)
		} else {
			a.notice("plots: %s", strings.Join(paths, ", "))
		}
	}
	w, closeOut, err := tmpl.output()
	if err != nil {
		return err
	}
	if format == "json" {
		err = report.WriteSweepJSON(w, doc)
	} else {
		err = report.WriteSweepText(w, doc, report.TextOptions{LatencySummary: tmpl.opts.latency >= 1, Buckets: tmpl.opts.latency >= 2},
			tmpl.opts.latency >= 1)
	}
	if cerr := closeOut(); err == nil {
		err = cerr
	}
	if err == nil {
		err = outErr
	}
	if err == nil && a.status == exitFailed && format == "text" {
		fmt.Fprintf(a.stderr, "nvmeperf: sweep status: %s\n", doc.Status)
	}
	return err
}

// parseRun parses run flags into a fresh app sharing this one's streams and probe.
func (a *app) parseRun(args []string) (*app, error) {
	run := newApp(a.args, a.stdout, a.stderr)
	run.probe = a.probe
	root := run.rootCommand()
	args, err := normalizeArgs(root.Flags(), args) // spdk_nvme_perf spellings, as the root command takes them
	if err != nil {
		return nil, err
	}
	if err := root.ParseFlags(args); err != nil {
		return nil, usagef("%v", err)
	}
	if err := run.results.check(); err != nil {
		return nil, err
	}
	return run, nil
}

// sweepAxes reads the list flags; a flag not given takes the run's single value.
func sweepAxes(lists map[string]string, tmpl *app) (sweep.Axes, map[int]string, error) {
	var ax sweep.Axes
	intList := func(long, short string, def []int, required string) ([]int, error) {
		s, ok := lists[long]
		if !ok {
			if required != "" {
				return nil, usagef("%s", required)
			}
			return def, nil
		}
		v, err := sweep.ParseList("-"+short, s, sweep.ParseInt)
		if err != nil {
			return nil, usagef("%v", err)
		}
		return v, nil
	}
	var err error
	if ax.QueueDepths, err = intList("io-depth", "q", nil, "-q (queue depths) is required: a list such as 1,4,16 or a range such as 1-256"); err != nil {
		return ax, nil, err
	}
	if ax.QPairsPerNS, err = intList("num-qpairs", "P", []int{1}, ""); err != nil {
		return ax, nil, err
	}
	if s, ok := lists["io-size"]; ok {
		sizes, err := sweep.ParseList("-o", s, func(x string) (int, error) {
			v, err := parseSize("-o", x)
			return int(v), err
		})
		if err != nil {
			return ax, nil, usagef("%v", err)
		}
		ax.IOSizes = sizes
	} else {
		return ax, nil, usagef("-o (I/O sizes) is required: a list such as 4k,128k or a range such as 4k-1m")
	}
	pats, ok := lists["io-pattern"]
	if !ok {
		return ax, nil, usagef("-w (patterns) is required: a list such as randread,randwrite")
	}
	mixed := false
	for _, p := range strings.Split(pats, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		pat, err := workload.ParsePattern(p)
		if err != nil {
			return ax, nil, usagef("-w %q: %q is not a pattern (want read, write, randread, randwrite, rw, randrw)", pats, p)
		}
		mixed = mixed || pat.Mixed()
		ax.Patterns = append(ax.Patterns, pat.String())
	}
	req := ""
	if mixed {
		req = "-M (read percentages) is required with -w rw or randrw, e.g. -M 70 or -M 50,70,100"
	}
	if ax.ReadPercents, err = intList("rwmixread", "M", []int{0}, req); err != nil {
		return ax, nil, err
	}
	for _, m := range ax.ReadPercents {
		if m < 0 || m > 100 {
			return ax, nil, usagef("-M %d: read percentage must be 0..100", m)
		}
	}
	coreSets := map[int]string{}
	if s, ok := lists["cores"]; ok {
		counts, err := sweep.ParseList("--cores", s, sweep.ParseInt)
		if err != nil {
			return ax, nil, usagef("%v", err)
		}
		pool := allowedCPUs()
		if tmpl.opts.set("core-mask") {
			if pool, err = parseCores(tmpl.opts.coreMask); err != nil {
				return ax, nil, err
			}
		}
		for _, n := range counts {
			if n < 1 || n > len(pool) {
				return ax, nil, usagef("--cores %s: %d workers, but %d cores are available (%s); give -c to choose them", s, n, len(pool), formatCores(pool))
			}
			coreSets[n] = formatCores(pool[:n])
		}
		ax.Workers = counts
	} else {
		ax.Workers = []int{0} // resolved per point from the run's -c
	}
	return ax, coreSets, nil
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func nonNilArgs(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writeFileWith creates path and writes it with write; errors name the flag.
func writeFileWith(path, flag string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return nil
}

// sweepProgress shows where a sweep is: on a terminal a live line (point i/N, its
// parameters, the run's rate, time left in the sweep); otherwise a line per finished
// point, plus --status-interval lines.
type sweepProgress struct {
	a        *app
	points   []*sweepPoint
	terminal bool
	start    time.Time
	done     []time.Duration
	current  int
}

// expected is how long a point should take: its -a and -t times its repetitions, or
// the mean of the finished points when it is bounded by -d.
func (s *sweepProgress) expected(i int) time.Duration {
	p := s.points[i].plan.cfg
	if p.Duration > 0 {
		return (p.Duration + p.Warmup + 500*time.Millisecond) * time.Duration(max(1, s.points[i].app.results.repeat))
	}
	if len(s.done) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range s.done {
		sum += d
	}
	return sum / time.Duration(len(s.done))
}

func (s *sweepProgress) left(i int, inPoint time.Duration) time.Duration {
	var t time.Duration
	for j := i; j < len(s.points); j++ {
		t += s.expected(j)
	}
	return max(0, t-inPoint)
}

func (s *sweepProgress) PointStarted(i, n int, p sweep.Point) { s.current = i }

func (s *sweepProgress) PointDone(i, n int, sp report.SweepPoint, took time.Duration) {
	s.done = append(s.done, took)
	if s.a.opts.quiet {
		return
	}
	s.clear()
	if s.terminal && !sp.Failed() {
		return // the live line shows progress; finished points need no line
	}
	msg := ""
	switch {
	case sp.Failed():
		why := sp.Error
		msg = "failed: " + why
	default:
		m, err := report.MetricsOf(sp.Result.Total.All)
		if err != nil {
			msg = err.Error()
			break
		}
		msg = fmt.Sprintf("%.0f IOPS, %.1f MiB/s, p99 %.1f us", m["iops"], m["mibps"], m["p99"]/1e3)
	}
	fmt.Fprintf(s.a.stderr, "nvmeperf: point %d/%d %s: %s\n", i+1, n, sp.Params, msg)
}

func (s *sweepProgress) progress(i int) func(workload.Progress) {
	if s.a.opts.quiet {
		return nil
	}
	sp := s.points[i]
	started := time.Now()
	if s.terminal {
		return func(pr workload.Progress) {
			fmt.Fprint(s.a.stderr, "\r\033[K"+s.barLine(i, time.Since(started), pr))
		}
	}
	if every := time.Duration(sp.app.results.statusInterval * float64(time.Second)); every > 0 {
		var last time.Time
		return func(pr workload.Progress) {
			if now := time.Now(); now.Sub(last) >= every {
				last = now
				fmt.Fprintf(s.a.stderr, "nvmeperf: point %d/%d %s: %s, sweep %s left\n", i+1, len(s.points), sp.Params,
					sp.app.progressText(pr), s.left(i, time.Since(started)).Round(time.Second))
			}
		}
	}
	return nil
}

// barLine is the live line on a terminal: a bar of the sweep's time, the point, its
// parameters, its rate and the sweep's time left.
func (s *sweepProgress) barLine(i int, inPoint time.Duration, pr workload.Progress) string {
	left := s.left(i, inPoint)
	var done time.Duration
	for _, d := range s.done {
		done += d
	}
	done += inPoint
	const width = 20
	filled := width
	if total := done + left; total > 0 {
		filled = int(float64(width) * float64(done) / float64(total))
	}
	filled = min(width, max(0, filled))
	bar := strings.Repeat("#", filled) + strings.Repeat("-", width-filled)
	return fmt.Sprintf("[%s] point %d/%d %s: %.0f IOPS, %s left",
		bar, i+1, len(s.points), s.points[i].Params, pr.IOPS, left.Round(time.Second))
}

func (s *sweepProgress) clear() {
	if s.terminal {
		fmt.Fprint(s.a.stderr, "\r\033[K")
	}
}
