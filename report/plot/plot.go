// Package plot draws a sweep's and a run's results with gonum.org/v1/plot (pure Go, so
// the binary stays static): IOPS against queue depth, latency percentiles against
// IOPS (where a drive saturates), and one run's latency percentile curve. It never
// prints; it writes files into the directory it is given.
package plot

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/nvmeperf/nvmeperf/report"
)

// Formats the package writes.
var Formats = []string{"svg", "png"}

const width, height = 8 * vg.Inch, 5 * vg.Inch

// Pow2Ticks labels a log axis at powers of two (1, 2, 4, ... 256).
type Pow2Ticks struct{}

// Ticks returns a tick at every power of two in [min, max].
func (Pow2Ticks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for v := math.Exp2(math.Floor(math.Log2(math.Max(min, 1)))); v <= max*1.0001; v *= 2 {
		if v >= min*0.9999 {
			ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		}
	}
	return ts
}

// SweepIOPS plots IOPS against queue depth (log2 axis), one line per qpair count and
// group (I/O size, pattern, mix). Failed points are left out.
func SweepIOPS(d *report.SweepDocument) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "IOPS vs queue depth"
	p.X.Label.Text = "queue depth"
	p.Y.Label.Text = "IOPS"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = Pow2Ticks{}
	p.Legend.Top = true
	p.Legend.Left = true
	var lines []any
	for _, g := range report.GroupSweep(d) {
		for _, n := range g.QPairs {
			var xys plotter.XYs
			for _, q := range g.Depths {
				pt, ok := g.Cell(q, n)
				if !ok || pt.Failed() {
					continue
				}
				m, err := report.MetricsOf(pt.Result.Total.All)
				if err != nil {
					return nil, err
				}
				xys = append(xys, plotter.XY{X: float64(q), Y: m["iops"]})
			}
			if len(xys) > 0 {
				lines = append(lines, fmt.Sprintf("%s, qpairs=%d", g.Label, n), xys)
			}
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("plot: the sweep has no successful point to plot")
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	p.Y.Min = 0
	return p, nil
}

// LatencyPercents are the percentiles SweepLatency draws.
var LatencyPercents = []struct {
	Name    string
	Percent float64
}{{"p50", 50}, {"p99", 99}, {"p99.9", 99.9}}

// SweepLatency plots p50, p99 and p99.9 latency (µs, log axis) against IOPS, one line
// per percentile, qpair count and group, points in queue depth order: the curve turns
// upward where the device saturates.
func SweepLatency(d *report.SweepDocument) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Latency vs IOPS"
	p.X.Label.Text = "IOPS"
	p.Y.Label.Text = "latency (µs)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	var lines []any
	for _, g := range report.GroupSweep(d) {
		for _, n := range g.QPairs {
			series := make([]plotter.XYs, len(LatencyPercents))
			for _, q := range g.Depths {
				pt, ok := g.Cell(q, n)
				if !ok || pt.Failed() {
					continue
				}
				h, err := report.MetricsOf(pt.Result.Total.All)
				if err != nil {
					return nil, err
				}
				for i, lp := range LatencyPercents {
					v := h[lp.Name] / 1e3
					if v > 0 {
						series[i] = append(series[i], plotter.XY{X: h["iops"], Y: v})
					}
				}
			}
			for i, lp := range LatencyPercents {
				if len(series[i]) > 0 {
					lines = append(lines, fmt.Sprintf("%s %s, qpairs=%d", lp.Name, g.Label, n), series[i])
				}
			}
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("plot: the sweep has no successful point to plot")
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	p.X.Min = 0
	return p, nil
}

// NinesTicks labels a "nines" axis (x = -log10(1 - p/100)) with percentiles.
type NinesTicks struct{}

// Ticks returns 0%, 90%, 99%, 99.9%, ... up to max.
func (NinesTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for k := math.Ceil(min); k <= max; k++ {
		pct := 100 * (1 - math.Pow(10, -k))
		ts = append(ts, plot.Tick{Value: k, Label: strconv.FormatFloat(pct, 'f', -1, 64) + "%"})
	}
	return ts
}

// RunPercentiles plots a run's latency (µs, log axis) against percentile on a "nines"
// axis, one line for reads and one for writes (those with I/Os), computed from the
// run's total histograms.
func RunPercentiles(d *report.Document) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Latency percentiles"
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (µs)"
	p.X.Tick.Marker = NinesTicks{}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	var lines []any
	for _, side := range []struct {
		name string
		s    report.Stats
	}{{"read", d.Total.Read}, {"write", d.Total.Write}} {
		xys, err := percentileCurve(side.s)
		if err != nil {
			return nil, fmt.Errorf("plot: %s: %w", side.name, err)
		}
		if len(xys) > 0 {
			lines = append(lines, side.name, xys)
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("plot: the run recorded no latency")
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	p.X.Min = 0
	return p, nil
}

// percentileCurve samples a histogram at 20 points per nine, up to the resolution its
// sample count supports (n samples resolve log10(n) nines).
func percentileCurve(s report.Stats) (plotter.XYs, error) {
	if s.IOs == 0 || s.Histogram == "" {
		return nil, nil
	}
	h, err := report.DecodeHistogram(s.Histogram)
	if err != nil {
		return nil, err
	}
	if h.TotalCount() == 0 {
		return nil, nil
	}
	maxNines := math.Log10(float64(h.TotalCount()))
	var xys plotter.XYs
	for x := 0.0; x <= maxNines+1e-9; x += 0.05 {
		pct := 100 * (1 - math.Pow(10, -x))
		v := float64(h.ValueAtPercentile(pct)) / 1e3
		if v > 0 {
			xys = append(xys, plotter.XY{X: x, Y: v})
		}
	}
	return xys, nil
}

// Write renders p in format (svg or png) to w.
func Write(w io.Writer, p *plot.Plot, format string) error {
	if !slices.Contains(Formats, format) {
		return fmt.Errorf("plot: format %q: want svg or png", format)
	}
	wt, err := p.WriterTo(width, height, format)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := wt.WriteTo(w); err != nil {
		return fmt.Errorf("plot: write: %w", err)
	}
	return nil
}

// save writes p to dir/name.format.
func save(dir, name, format string, p *plot.Plot) (string, error) {
	path := filepath.Join(dir, name+"."+format)
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("plot: %w", err)
	}
	if err := Write(f, p, format); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// WriteSweep writes iops.<format> and latency.<format> into dir (created if missing)
// and returns their paths.
func WriteSweep(dir, format string, d *report.SweepDocument) ([]string, error) {
	if !slices.Contains(Formats, format) {
		return nil, fmt.Errorf("plot: format %q: want svg or png", format)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	var paths []string
	for _, x := range []struct {
		name string
		make func(*report.SweepDocument) (*plot.Plot, error)
	}{{"iops", SweepIOPS}, {"latency", SweepLatency}} {
		p, err := x.make(d)
		if err != nil {
			return paths, err
		}
		path, err := save(dir, x.name, format, p)
		if err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// WriteRun writes percentiles.<format> for a single run into dir.
func WriteRun(dir, format string, d *report.Document) ([]string, error) {
	if !slices.Contains(Formats, format) {
		return nil, fmt.Errorf("plot: format %q: want svg or png", format)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	p, err := RunPercentiles(d)
	if err != nil {
		return nil, err
	}
	path, err := save(dir, "percentiles", format, p)
	if err != nil {
		return nil, err
	}
	return []string{path}, nil
}
