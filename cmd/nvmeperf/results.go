package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nvmeperf/nvmeperf/driver/trid"
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

// measure opens the targets the options name, runs the plan once and returns the
// run's document and exit status. An error means the run could not start.
func (a *app) measure(ctx context.Context, p *plan, args []string, progress func(workload.Progress)) (*report.Document, int, error) {
	var ids []trid.ID
	for _, s := range a.opts.trids {
		id, err := trid.Parse(s)
		if err != nil {
			return nil, exitUsage, usagef("-r %q: %v", s, err)
		}
		ids = append(ids, id)
	}
	var fileSize int64
	if a.opts.fileSize != "" {
		var err error
		if fileSize, err = parseSize("--size", a.opts.fileSize); err != nil {
			return nil, exitUsage, err
		}
	}
	meta := a.meta(p)
	meta.Percentiles = a.results.percents
	targets, err := a.openTargets(p, ids, args, fileSize)
	if err != nil {
		return nil, exitFailed, err
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
		cfg.NumIOs = a.opts.numIOs * uint64(max(len(targets), max(1, len(cfg.Cores))))
	}
	cfg.Progress = progress
	res := workload.Run(ctx, targets, cfg)
	status, code := a.outcome(res)
	doc := report.Build(meta, res, status)
	return &doc, code, nil
}

// measureRepeated runs the plan n times (stopping early when ctx is cancelled) and
// merges the repetitions; the exit status is the first non-zero one. onRep, if set, is
// told before each repetition.
func (a *app) measureRepeated(ctx context.Context, p *plan, args []string, n int,
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
		d, c, err := a.measure(ctx, p, args, progress)
		if err != nil {
			return nil, c, err
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
func (a *app) repeatBench(args []string) error {
	p, err := a.opts.validate(allowedCPUs())
	if err != nil {
		return err
	}
	ctx, stop := a.interruptible()
	defer stop()
	progress := a.runProgress()
	doc, code, err := a.measureRepeated(ctx, p, args, a.results.repeat, progress, func(i int) {
		if !a.opts.quiet {
			a.clearProgress()
			fmt.Fprintf(a.stderr, "nvmeperf: repetition %d/%d\n", i+1, a.results.repeat)
		}
	})
	a.clearProgress()
	if err != nil {
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
