package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// SweepGroup is the points of a sweep that share I/O size, pattern and read mix (and
// the worker count, when two points would otherwise share a cell): one IOPS and one
// p99 matrix, and one family of lines in the plots.
type SweepGroup struct {
	Label  string
	Points []SweepPoint
	Depths []int // rows, ascending
	QPairs []int // columns, ascending
}

// Cell returns the point at queue depth q and qpairs n, if the group has it.
func (g SweepGroup) Cell(q, n int) (SweepPoint, bool) {
	for _, p := range g.Points {
		if p.Params.QueueDepth == q && p.Params.QPairs == n {
			return p, true
		}
	}
	return SweepPoint{}, false
}

// GroupSweep splits a sweep's points into groups in order of first appearance.
func GroupSweep(d *SweepDocument) []SweepGroup {
	type cell struct {
		size, mix, q, n int
		pat             string
	}
	byWorkers := false
	seen := map[cell]int{}
	for _, p := range d.Points {
		c := cell{p.Params.IOSize, p.Params.ReadPercent, p.Params.QueueDepth, p.Params.QPairs, p.Params.Pattern}
		seen[c]++
		if seen[c] > 1 {
			byWorkers = true
		}
	}
	var groups []SweepGroup
	index := map[string]int{}
	for _, p := range d.Points {
		label := fmt.Sprintf("%s %s", sizeLabel(p.Params.IOSize), p.Params.Pattern)
		if p.Params.Pattern == "rw" || p.Params.Pattern == "randrw" {
			label += fmt.Sprintf(" %d%% reads", p.Params.ReadPercent)
		}
		if byWorkers {
			label += fmt.Sprintf(", %d workers", p.Params.Workers)
		}
		i, ok := index[label]
		if !ok {
			i = len(groups)
			index[label] = i
			groups = append(groups, SweepGroup{Label: label})
		}
		g := &groups[i]
		g.Points = append(g.Points, p)
		if !slices.Contains(g.Depths, p.Params.QueueDepth) {
			g.Depths = append(g.Depths, p.Params.QueueDepth)
		}
		if !slices.Contains(g.QPairs, p.Params.QPairs) {
			g.QPairs = append(g.QPairs, p.Params.QPairs)
		}
	}
	for i := range groups {
		slices.Sort(groups[i].Depths)
		slices.Sort(groups[i].QPairs)
	}
	return groups
}

// sizeLabel writes 4096 as 4k, 131072 as 128k, 1048576 as 1m, and others in bytes.
func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dm", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dk", n>>10)
	}
	return strconv.Itoa(n)
}

// WriteSweepText writes, per group, a matrix of IOPS and one of p99 latency (µs), rows
// queue depth and columns qpairs, then the failed points with their errors. With
// verbose it also writes every point's SPDK-style report.
func WriteSweepText(w io.Writer, d *SweepDocument, opts TextOptions, verbose bool) error {
	var b strings.Builder
	switch d.Status {
	case SweepInterrupted:
		b.WriteString("NOTE: the sweep was interrupted; only the points below were measured.\n\n")
	}
	for _, g := range GroupSweep(d) {
		writeMatrix(&b, g, "IOPS", func(m Metrics) string { return fmt.Sprintf("%.0f", m["iops"]) })
		writeMatrix(&b, g, "p99 latency (us)", func(m Metrics) string { return fmt.Sprintf("%.2f", m["p99"]/1e3) })
	}
	var failed []string
	for _, p := range d.Points {
		if p.Failed() {
			why := p.Error
			if why == "" && p.Result != nil {
				why = p.Result.Status
			}
			failed = append(failed, fmt.Sprintf("  %s: %s\n", p.Params, why))
		}
	}
	if len(failed) > 0 {
		b.WriteString("Failed points:\n" + strings.Join(failed, "") + "\n")
	}
	if verbose {
		for _, p := range d.Points {
			if p.Result == nil {
				continue
			}
			res, err := p.Result.Result()
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "Point %s:\n", p.Params)
			o := opts
			o.Mixed = p.Params.Pattern == "rw" || p.Params.Pattern == "randrw"
			writeText(&b, res, o)
			b.WriteString("\n")
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: write sweep text: %w", err)
	}
	return nil
}

func writeMatrix(b *strings.Builder, g SweepGroup, what string, cell func(Metrics) string) {
	fmt.Fprintf(b, "%s: %s (rows: queue depth, columns: qpairs)\n", g.Label, what)
	fmt.Fprintf(b, "%8s", "QD")
	for _, n := range g.QPairs {
		fmt.Fprintf(b, " %12d", n)
	}
	b.WriteString("\n")
	for _, q := range g.Depths {
		fmt.Fprintf(b, "%8d", q)
		for _, n := range g.QPairs {
			p, ok := g.Cell(q, n)
			v := "-"
			switch {
			case !ok:
			case p.Failed():
				v = "failed"
			default:
				if m, err := MetricsOf(p.Result.Total.All); err == nil {
					v = cell(m)
				} else {
					v = "corrupt"
				}
			}
			fmt.Fprintf(b, " %12s", v)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// CSVHeader is the header row of WriteCSV; latencies are nanoseconds, from histograms.
var CSVHeader = []string{"queue_depth", "qpairs", "workers", "io_size", "pattern", "read_percent", "status",
	"iops", "mibps", "mean_ns", "p50_ns", "p99_ns", "p99.9_ns", "p99.99_ns", "errors", "error"}

// WriteCSV writes one row per sweep point (one row for a run: pass a one-point sweep
// from RunAsSweep).
func WriteCSV(w io.Writer, d *SweepDocument) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(CSVHeader)
	for _, p := range d.Points {
		pp := p.Params
		row := []string{strconv.Itoa(pp.QueueDepth), strconv.Itoa(pp.QPairs), strconv.Itoa(pp.Workers),
			strconv.Itoa(pp.IOSize), pp.Pattern, strconv.Itoa(pp.ReadPercent)}
		status, why := "failed", p.Error
		var m Metrics
		if p.Result != nil {
			status = p.Result.Status
			var err error
			if m, err = MetricsOf(p.Result.Total.All); err != nil {
				m, why = nil, err.Error()
			}
		}
		row = append(row, status)
		for _, name := range MetricNames {
			if m == nil {
				row = append(row, "")
				continue
			}
			switch name {
			case "iops", "mibps", "mean":
				row = append(row, strconv.FormatFloat(m[name], 'f', 3, 64))
			default:
				row = append(row, strconv.FormatFloat(m[name], 'f', 0, 64))
			}
		}
		row = append(row, why)
		_ = cw.Write(row)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("report: write CSV: %w", err)
	}
	return nil
}

// RunAsSweep wraps one run as a one-point sweep, so the CSV, plots and comparisons of
// runs and sweeps share one code path.
func RunAsSweep(d *Document) *SweepDocument {
	return &SweepDocument{Schema: SweepSchema, Version: d.Version, CommandLine: d.CommandLine, StartTime: d.StartTime,
		Status: SweepOK, Host: d.Host, Points: []SweepPoint{{Params: ParamsOf(d), Result: d}}}
}
