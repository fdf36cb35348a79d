package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/workload"
)

// resultsOptions are the run flags issue 8 added: repetitions, status lines for logs
// and the JSON percentile set.
type resultsOptions struct {
	repeat         int
	statusInterval float64
	percentiles    string
	percents       []float64 // parsed --percentiles; nil = report.DefaultPercentiles
	hooks          *runHooks // set when a sweep or --repeat runs bench (results.go)
}

func (a *app) addResultsFlags(f *pflag.FlagSet) {
	r := &a.results
	f.IntVar(&r.repeat, "repeat", 1, "run N times; the JSON keeps every repetition and reports median and 95% CI per metric")
	f.Float64Var(&r.statusInterval, "status-interval", 0, "print a progress line on stderr every SECONDS, even when it is not a terminal (CI logs)")
	f.StringVar(&r.percentiles, "percentiles", "", "latency percentiles in the JSON, comma list (default 1,5,...,99.99,99.999,99.9999)")
}

// check validates the flags above.
func (r *resultsOptions) check() error {
	if r.repeat < 1 || r.repeat > 1000 {
		return usagef("--repeat %d: want 1..1000 runs", r.repeat)
	}
	if r.statusInterval < 0 || math.IsNaN(r.statusInterval) || math.IsInf(r.statusInterval, 0) {
		return usagef("--status-interval %v: want seconds, 0 (off) or more", r.statusInterval)
	}
	if r.percentiles == "" {
		return nil
	}
	ps, err := parsePercentiles(r.percentiles)
	if err != nil {
		return err
	}
	r.percents = ps
	return nil
}

// parsePercentiles reads "50,99,99.9" into ascending, distinct percents.
func parsePercentiles(s string) ([]float64, error) {
	seen := map[float64]bool{}
	var ps []float64
	for _, part := range strings.Split(s, ",") {
		p, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || p <= 0 || p > 100 || math.IsNaN(p) {
			return nil, usagef("--percentiles %q: %q is not a percent above 0 and at most 100 (want e.g. 50,99,99.9,99.999)", s, part)
		}
		if !seen[p] {
			seen[p] = true
			ps = append(ps, p)
		}
	}
	sort.Float64s(ps)
	return ps, nil
}

// statusLines returns a Progress callback that prints a line at most every
// --status-interval seconds; the collector calls it about once a second.
func (a *app) statusLines() func(workload.Progress) {
	every := time.Duration(a.results.statusInterval * float64(time.Second))
	var last time.Time
	return func(pr workload.Progress) {
		if now := time.Now(); now.Sub(last) >= every {
			last = now
			fmt.Fprintln(a.stderr, "nvmeperf: "+a.progressText(pr))
		}
	}
}

func (a *app) progressText(pr workload.Progress) string {
	phase := "run"
	if pr.Warmup {
		phase = "warm-up"
	}
	rem := ""
	if pr.Remaining > 0 {
		rem = fmt.Sprintf(", %s left", pr.Remaining.Round(time.Second))
	}
	return fmt.Sprintf("[%s %s%s] %.0f IOPS, %.1f MiB/s, %d I/Os",
		phase, pr.Elapsed.Round(time.Second), rem, pr.IOPS, pr.MiBps, pr.IOs)
}

// runHooks let a sweep point or a repetition go through bench, the one run path (safety
// checks, compatibility options, status and exit code), and take its document instead of
// writing a report.
type runHooks struct {
	ctx      context.Context           // the caller's: a sweep stops on its Ctrl-C
	progress func(workload.Progress)   // replaces bench's own progress output
	capture  func(doc report.Document) // receives the run's document (also a failed run's)
}

// runContext is bench's context: the caller's when hooked, else one Ctrl-C cancels.
func (a *app) runContext() (context.Context, func()) {
	if h := a.results.hooks; h != nil {
		return h.ctx, func() {}
	}
	return a.interruptible()
}

// measure runs bench once with the run flags runArgs (a fresh parse, JSON forced, no
// --output) and returns its document and exit status. An error with a document means
// the run started, or was refused after its targets were named, and failed; an error
// alone that it could not start.
func (a *app) measure(ctx context.Context, runArgs []string, progress func(workload.Progress)) (*report.Document, int, error) {
	run, err := a.parseRun(append(append([]string{}, runArgs...), "--output-format", "json"))
	if err != nil {
		return nil, exitUsage, err
	}
	run.opts.outputFile = ""
	var doc *report.Document
	run.results.hooks = &runHooks{ctx: ctx, progress: progress, capture: func(d report.Document) { doc = &d }}
	err = run.bench(nil, run.root.Flags().Args())
	if doc == nil && err == nil {
		err = errors.New("the run wrote no result")
	}
	code := run.status
	if err != nil && code == exitOK {
		code = exitFailed
	}
	return doc, code, err
}

// measureRepeated measures n times (stopping early when ctx is cancelled) and merges
// the repetitions; the exit status is the first non-zero one. onRep, if set, is told
// before each repetition.
func (a *app) measureRepeated(ctx context.Context, runArgs []string, n int,
	progress func(workload.Progress), onRep func(i int)) (*report.Document, int, error) {
	var docs []report.Document
	code := exitOK
	for i := range n {
		if i > 0 && ctx.Err() != nil {
			break
		}
		if onRep != nil {
			onRep(i)
		}
		d, c, err := a.measure(ctx, runArgs, progress)
		if err != nil {
			return d, c, err
		}
		docs = append(docs, *d)
		if code == exitOK {
			code = c
		}
	}
	if len(docs) == 1 && n == 1 {
		return &docs[0], code, nil
	}
	merged, err := report.MergeRepetitions(docs)
	if err != nil {
		return nil, exitFailed, err
	}
	return &merged, code, nil
}

// repeatBench is the root command with --repeat N > 1.
func (a *app) repeatBench() error {
	p, err := a.opts.validate(allowedCPUs())
	if err != nil {
		return err
	}
	if err := a.clusterUsage(true); err != nil {
		return err
	}
	if p.format != "text" && p.format != "json" {
		return usagef("--repeat %d with --output-format %s: want text or json", a.results.repeat, p.format)
	}
	// N runs must not end in an unwritable --output.
	if err := checkOutputs([]outputPath{{flag: "--output", path: a.opts.outputFile}}, a.root.Flags().Args()); err != nil {
		return err
	}
	ctx, stop := a.interruptible()
	defer stop()
	progress := a.runProgress()
	doc, code, err := a.measureRepeated(ctx, a.args[1:], a.results.repeat, progress, func(i int) {
		if !a.opts.quiet {
			a.clearProgress()
			fmt.Fprintf(a.stderr, "nvmeperf: repetition %d/%d\n", i+1, a.results.repeat)
		}
	})
	a.clearProgress()
	if err != nil {
		if doc != nil && p.format == "json" { // a CI consumer always gets a document
			if w, closeOut, oerr := a.output(); oerr == nil {
				_ = report.WriteJSON(w, *doc)
				_ = closeOut()
			}
		}
		return err
	}
	a.status = code
	w, closeOut, err := a.output()
	if err != nil {
		return err
	}
	if p.format == "json" {
		err = report.WriteJSON(w, *doc)
	} else {
		err = writeRunText(w, doc, report.TextOptions{LatencySummary: p.latency >= 1, Buckets: p.latency >= 2})
	}
	if cerr := closeOut(); err == nil {
		err = cerr
	}
	return err
}

// runProgress is the progress callback of a run: the live line on a terminal, status
// lines with --status-interval, else none.
func (a *app) runProgress() func(workload.Progress) {
	switch {
	case a.opts.quiet:
		return nil
	case isTerminal(a.stderr):
		return a.progressLine
	case a.results.statusInterval > 0:
		return a.statusLines()
	}
	return nil
}

func (a *app) clearProgress() {
	if !a.opts.quiet && isTerminal(a.stderr) {
		fmt.Fprint(a.stderr, "\r\033[K")
	}
}
