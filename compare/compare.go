// Package compare turns two saved results (runs or sweeps, matched point by point)
// into a verdict: a delta per metric, regressions against thresholds, and — when both
// sides were repeated — a Mann–Whitney U test so run-to-run noise is reported as "no
// significant change" rather than flagged. Percentiles are recomputed from the stored
// histograms. The package never prints; its writers take an io.Writer.
package compare

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/perf/benchmath"

	"github.com/nvmeperf/nvmeperf/report"
)

// Verdicts of one metric at one point.
const (
	VerdictOK            = "ok"
	VerdictRegression    = "regression"
	VerdictInsignificant = "no significant change" // threshold crossed, but within noise
	VerdictFailed        = "failed"                // the new run of the point failed
)

// Thresholds map a metric (report.MetricNames) to the change that counts as a
// regression: a signed percentage (iops -5 means a drop of more than 5 %), except for
// errors, an absolute increase in the error count.
type Thresholds map[string]float64

// DefaultThresholds: IOPS or MiB/s down more than 5 %, p99 up more than 10 %, or any new
// I/O error. The other metrics are shown without a threshold.
func DefaultThresholds() Thresholds {
	return Thresholds{"iops": -5, "mibps": -5, "p99": 10, "errors": 0}
}

// ParseThresholds reads "iops=-3%,p99=+15%,p99.9=off" on top of base: a value without
// a sign takes the metric's bad direction (down for iops and mibps, up for the
// others); "off" removes a threshold.
func ParseThresholds(s string, base Thresholds) (Thresholds, error) {
	out := Thresholds{}
	for k, v := range base {
		out[k] = v
	}
	accepted := strings.Join(report.MetricNames, ", ")
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || !slices.Contains(report.MetricNames, name) {
			return nil, fmt.Errorf("--threshold %q: want metric=change with a metric among %s, e.g. iops=-3%%,p99=+15%%", part, accepted)
		}
		val = strings.TrimSpace(val)
		if val == "off" || val == "none" {
			delete(out, name)
			continue
		}
		signed := strings.HasPrefix(val, "+") || strings.HasPrefix(val, "-")
		num := strings.TrimSuffix(val, "%")
		if name == "errors" && num != val {
			return nil, fmt.Errorf("--threshold %q: errors takes a count (errors=+0 flags any new error), not a percentage", part)
		}
		x, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("--threshold %q: %q is not a number (want e.g. -3%% or +15%%)", part, val)
		}
		if !signed && report.HigherIsBetter(name) {
			x = -x
		}
		if name == "errors" && x < 0 {
			return nil, fmt.Errorf("--threshold %q: errors takes the allowed increase, 0 or more", part)
		}
		if (report.HigherIsBetter(name) && x > 0) || (!report.HigherIsBetter(name) && x < 0) {
			return nil, fmt.Errorf("--threshold %q: %s regresses when it goes %s; give %s", part, name,
				map[bool]string{true: "down", false: "up"}[report.HigherIsBetter(name)],
				map[bool]string{true: "a negative change such as -3%", false: "a positive change such as +15%"}[report.HigherIsBetter(name)])
		}
		out[name] = x
	}
	return out, nil
}

// Options tune Compare.
type Options struct {
	Thresholds Thresholds // nil means DefaultThresholds
	Force      bool       // compare runs whose configurations differ
	Alpha      float64    // significance level of the U test; 0 means 0.05
}

// Row is one metric at one point.
type Row struct {
	Point     string   `json:"point"`
	Metric    string   `json:"metric"`
	Base      float64  `json:"base"` // latencies in ns; with repetitions, the median
	New       float64  `json:"new"`
	DeltaPct  *float64 `json:"delta_pct"` // null when base is 0 and new is not
	Threshold *float64 `json:"threshold,omitempty"`
	Verdict   string   `json:"verdict"`
	// P is the U test's p-value, present when both sides had repetitions.
	P      *float64 `json:"p_value,omitempty"`
	N1, N2 int      `json:"-"`
	Note   string   `json:"note,omitempty"`
}

// Result is a comparison.
type Result struct {
	Base        string     `json:"base"`
	New         string     `json:"new"`
	Kind        string     `json:"kind"` // run or sweep
	Rows        []Row      `json:"rows"`
	Regressions []Row      `json:"regressions"`
	Forced      []string   `json:"forced,omitempty"` // differences --force let through
	Notes       []string   `json:"notes,omitempty"`
	Thresholds  Thresholds `json:"thresholds"`
}

// Regressed reports whether any metric crossed its threshold (or a point failed).
func (r *Result) Regressed() bool { return len(r.Regressions) > 0 }

// Verdict is one line: what regressed where, or that nothing did.
func (r *Result) Verdict() string {
	if !r.Regressed() {
		return "no regression"
	}
	// A sweep can regress at every point: name the first few, count the rest (the
	// table and the JUnit report list them all).
	const named = 4
	var parts []string
	for i, row := range r.Regressions {
		if i == named {
			parts = append(parts, fmt.Sprintf("and %d more", len(r.Regressions)-named))
			break
		}
		parts = append(parts, row.describe())
	}
	return "regression: " + strings.Join(parts, "; ")
}

func (row Row) describe() string {
	if row.Verdict == VerdictFailed {
		return fmt.Sprintf("%s failed in the new run (%s)", row.Point, row.Note)
	}
	return fmt.Sprintf("%s %s at %s (threshold %s)", row.Metric, formatDelta(row), row.Point, formatThreshold(row.Metric, row.Threshold))
}

// IncomparableError says why two documents cannot be compared.
type IncomparableError = report.IncomparableError

type pair struct {
	label     string
	base, new *report.Document
	newErr    string
}

// Compare compares new against base. It returns an *IncomparableError when the
// documents measure different things (unless Options.Force), naming what differs.
func Compare(baseName string, base *report.Loaded, newName string, nw *report.Loaded, opt Options) (*Result, error) {
	if opt.Thresholds == nil {
		opt.Thresholds = DefaultThresholds()
	}
	if opt.Alpha == 0 {
		opt.Alpha = 0.05
	}
	res := &Result{Base: baseName, New: newName, Kind: base.Kind(), Rows: []Row{}, Regressions: []Row{}, Thresholds: opt.Thresholds}
	if base.Kind() != nw.Kind() {
		return nil, &IncomparableError{Why: fmt.Sprintf("%s is a %s and %s is a %s", baseName, base.Kind(), newName, nw.Kind())}
	}
	var pairs []pair
	var diffs []string
	if base.Run != nil {
		pairs = []pair{{label: report.ParamsOf(base.Run).String(), base: base.Run, new: nw.Run}}
	} else {
		newBy := map[report.SweepParams]report.SweepPoint{}
		for _, p := range nw.Sweep.Points {
			newBy[p.Params] = p
		}
		seen := map[report.SweepParams]bool{}
		for _, bp := range base.Sweep.Points {
			seen[bp.Params] = true
			np, ok := newBy[bp.Params]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("point %s is only in %s", bp.Params, baseName))
			case bp.Failed():
				res.Notes = append(res.Notes, fmt.Sprintf("point %s failed in %s: nothing to compare against", bp.Params, baseName))
			case np.Failed():
				why := np.Error
				if why == "" && np.Result != nil {
					why = np.Result.Status
				}
				pairs = append(pairs, pair{label: bp.Params.String(), base: bp.Result, newErr: why})
			default:
				pairs = append(pairs, pair{label: bp.Params.String(), base: bp.Result, new: np.Result})
			}
		}
		for _, np := range nw.Sweep.Points {
			if !seen[np.Params] {
				diffs = append(diffs, fmt.Sprintf("point %s is only in %s", np.Params, newName))
			}
		}
	}
	for _, p := range pairs {
		if p.new == nil {
			continue
		}
		for _, d := range report.Differences(p.base, p.new) {
			if base.Run != nil {
				diffs = append(diffs, d)
			} else {
				diffs = append(diffs, p.label+": "+d)
			}
		}
	}
	if len(diffs) > 0 {
		if !opt.Force {
			return nil, &IncomparableError{Why: strings.Join(diffs, "; ") + " (--force compares anyway)"}
		}
		res.Forced = diffs
	}
	if len(pairs) == 0 {
		return nil, &IncomparableError{Why: "no point was measured on both sides"}
	}
	for _, p := range pairs {
		if p.new == nil {
			row := Row{Point: p.label, Metric: "status", Verdict: VerdictFailed, Note: p.newErr}
			res.Rows = append(res.Rows, row)
			res.Regressions = append(res.Regressions, row)
			continue
		}
		rows, notes, err := comparePoint(p, opt)
		if err != nil {
			return nil, err
		}
		res.Notes = append(res.Notes, notes...)
		for _, row := range rows {
			res.Rows = append(res.Rows, row)
			if row.Verdict == VerdictRegression {
				res.Regressions = append(res.Regressions, row)
			}
		}
	}
	return res, nil
}

func comparePoint(p pair, opt Options) ([]Row, []string, error) {
	bm, err := report.MetricsOf(p.base.Total.All)
	if err != nil {
		return nil, nil, fmt.Errorf("compare: base %s: %w", p.label, err)
	}
	nm, err := report.MetricsOf(p.new.Total.All)
	if err != nil {
		return nil, nil, fmt.Errorf("compare: new %s: %w", p.label, err)
	}
	var bs, ns map[string][]float64
	var notes []string
	repeated := len(p.base.Repetitions) >= 2 && len(p.new.Repetitions) >= 2
	if repeated {
		if bs, err = report.RepetitionSamples(p.base.Repetitions); err != nil {
			return nil, nil, fmt.Errorf("compare: base %s: %w", p.label, err)
		}
		if ns, err = report.RepetitionSamples(p.new.Repetitions); err != nil {
			return nil, nil, fmt.Errorf("compare: new %s: %w", p.label, err)
		}
	} else if len(p.base.Repetitions) >= 2 || len(p.new.Repetitions) >= 2 {
		notes = append(notes, fmt.Sprintf("%s: only one side has repetitions: comparing the merged results without a significance test", p.label))
	}
	var rows []Row
	warned := false
	for _, name := range report.MetricNames {
		row := Row{Point: p.label, Metric: name, Base: bm[name], New: nm[name], Verdict: VerdictOK}
		if repeated {
			thr := &benchmath.Thresholds{CompareAlpha: opt.Alpha}
			s1 := benchmath.NewSample(slices.Clone(bs[name]), thr)
			s2 := benchmath.NewSample(slices.Clone(ns[name]), thr)
			row.Base = benchmath.AssumeNothing.Summary(s1, 0.95).Center
			row.New = benchmath.AssumeNothing.Summary(s2, 0.95).Center
			c := benchmath.AssumeNothing.Compare(s1, s2)
			pv := c.P
			row.P, row.N1, row.N2 = &pv, c.N1, c.N2
			if len(c.Warnings) > 0 && !warned {
				warned = true
				notes = append(notes, fmt.Sprintf("%s: %v", p.label, errors.Join(c.Warnings...)))
			}
		}
		row.DeltaPct = delta(row.Base, row.New)
		if t, ok := opt.Thresholds[name]; ok {
			tt := t
			row.Threshold = &tt
			if crossed(name, row, t) {
				row.Verdict = VerdictRegression
				if row.P != nil && *row.P > opt.Alpha {
					row.Verdict = VerdictInsignificant
				}
			}
		}
		rows = append(rows, row)
	}
	return rows, notes, nil
}

func delta(base, nw float64) *float64 {
	if base == 0 {
		if nw == 0 {
			z := 0.0
			return &z
		}
		return nil
	}
	d := (nw - base) / base * 100
	return &d
}

func crossed(metric string, row Row, t float64) bool {
	if metric == "errors" {
		return row.New-row.Base > t
	}
	if row.DeltaPct == nil { // from zero to something
		return !report.HigherIsBetter(metric)
	}
	if t < 0 {
		return *row.DeltaPct < t
	}
	return *row.DeltaPct > t
}
