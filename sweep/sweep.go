// Package sweep plans and runs a benchmark sweep: the cartesian product of queue
// depths, queue pairs, worker counts, I/O sizes, patterns and read mixes, one complete
// result document per point. It never prints and knows nothing of devices: the caller
// supplies the function that measures one point (the CLI runs the workload engine
// there), and an observer for progress.
package sweep

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nvmeperf/nvmeperf/report"
)

// ParseList reads a flag value that is a comma list of values and power-of-two ranges:
// "1,2,4", "1-256" (1, 2, 4, ..., 256), "4k-128k,1m". A range doubles from its low end
// and ends with its high end even when that is not a doubling of the low one. parse
// reads one value (a size parser for -o); the result keeps the given order, without
// repeats.
func ParseList(flag, s string, parse func(string) (int, error)) ([]int, error) {
	bad := func(part, why string) error {
		return fmt.Errorf("%s %q: %s (want a comma list of values and power-of-two ranges, e.g. 1,2,4 or 1-256)", flag, s, fmt.Sprintf("%q %s", part, why))
	}
	var out []int
	add := func(v int) {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%s: empty list (want values such as 1,2,4 or a range such as 1-256)", flag)
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parse(lo)
		if err != nil {
			return nil, bad(part, "is not a value: "+err.Error())
		}
		if !isRange {
			add(a)
			continue
		}
		b, err := parse(hi)
		if err != nil {
			return nil, bad(part, "does not end in a value: "+err.Error())
		}
		if a < 1 || b < a {
			return nil, bad(part, "is not a range from a positive value up to a larger one")
		}
		for v := a; v < b; v *= 2 {
			add(v)
			if len(out) > 4096 {
				return nil, bad(part, "has too many values")
			}
		}
		add(b)
	}
	return out, nil
}

// ParseInt reads a plain integer (for ParseList).
func ParseInt(s string) (int, error) { return strconv.Atoi(strings.TrimSpace(s)) }

// Axes are the values each parameter takes.
type Axes struct {
	QueueDepths  []int
	QPairsPerNS  []int // -P: queue pairs per namespace per worker
	Workers      []int // number of pinned workers (cores)
	IOSizes      []int
	Patterns     []string
	ReadPercents []int // used by mixed patterns only
}

// Point is one point to measure: its report parameters and the -P it runs with.
type Point struct {
	Params      report.SweepParams
	QPairsPerNS int
}

// Points is the cartesian product of the axes, queue depth varying fastest, then -P,
// workers, I/O size, read mix and pattern. Pure-read and pure-write patterns do not
// vary the mix (their read percentage is 100 or 0). A point whose -P exceeds its queue
// depth is left out, as a run refuses it.
func (a Axes) Points() []Point {
	var out []Point
	for _, pat := range a.Patterns {
		mixes := a.ReadPercents
		switch pat {
		case "read", "randread":
			mixes = []int{100}
		case "write", "randwrite":
			mixes = []int{0}
		}
		for _, mix := range mixes {
			for _, size := range a.IOSizes {
				for _, w := range a.Workers {
					for _, p := range a.QPairsPerNS {
						for _, q := range a.QueueDepths {
							if p > q {
								continue
							}
							out = append(out, Point{QPairsPerNS: p, Params: report.SweepParams{
								QueueDepth: q, QPairs: w * p, Workers: w, IOSize: size, Pattern: pat, ReadPercent: mix,
							}})
						}
					}
				}
			}
		}
	}
	return out
}

// Config records the axes in the sweep document.
func (a Axes) Config(repeat int, labels map[string]string) report.SweepConfig {
	return report.SweepConfig{
		QueueDepths: a.QueueDepths, QPairsPerNS: a.QPairsPerNS, Workers: a.Workers, IOSizes: a.IOSizes,
		Patterns: a.Patterns, ReadPercents: a.ReadPercents, Repeat: max(1, repeat), Labels: labels,
	}
}

// Measure runs one point and returns its result document. A returned error with a
// document means the run started and failed (the document holds what it measured); an
// error alone means it could not start.
type Measure func(ctx context.Context, index int, p Point) (*report.Document, error)

// Observer is told when a point starts and ends (from the goroutine calling Run).
type Observer interface {
	PointStarted(index, total int, p Point)
	PointDone(index, total int, sp report.SweepPoint, took time.Duration)
}

// Run measures every point in order. A point that fails keeps its parameters and its
// error and the sweep goes on; when ctx is cancelled the sweep stops after the current
// point (whose interrupted result is kept) and marks the document interrupted.
func Run(ctx context.Context, doc *report.SweepDocument, points []Point, measure Measure, obs Observer) {
	doc.Schema = report.SweepSchema
	doc.Points = []report.SweepPoint{}
	for i, p := range points {
		if ctx.Err() != nil {
			doc.Interrupted = true
			break
		}
		if obs != nil {
			obs.PointStarted(i, len(points), p)
		}
		start := time.Now()
		res, err := measure(ctx, i, p)
		sp := report.SweepPoint{Params: p.Params, Result: res}
		if err != nil {
			sp.Error = err.Error()
		} else if res == nil {
			sp.Error = "no result"
		} else if res.Status != report.StatusOK && res.Status != report.StatusInterrupted {
			sp.Error = res.Status
		}
		if res != nil && res.Interrupted {
			doc.Interrupted = true
		}
		doc.Points = append(doc.Points, sp)
		if obs != nil {
			obs.PointDone(i, len(points), sp, time.Since(start))
		}
	}
	doc.Status = report.SweepOK
	for _, p := range doc.Points {
		if p.Failed() {
			doc.Status = report.SweepFailedPoints
		}
	}
	if doc.Interrupted {
		doc.Status = report.SweepInterrupted
	}
}
