package report

import (
	"fmt"
	"io"
	"math/bits"
	"strings"

	"github.com/nvmeperf/nvmeperf/workload"
)

// The text report reproduces SPDK perf's layout with plain fmt and fixed widths rather
// than tablewriter: SPDK's table is a left-padded label, a colon and five %10.2f
// columns with no borders, and scripts users already have cut those columns by
// position. tablewriter would add separators and re-flow widths.

// TextOptions selects the optional parts of the text report.
type TextOptions struct {
	LatencySummary bool // -L: percentiles at SPDK's cutoffs per job
	Buckets        bool // -LL: additionally the latency histogram per job
	Mixed          bool // read and write rows (and sections) besides the merged ones
	// Recovery, when set, adds a summary of recovery events and health (recovery.go).
	Recovery *Recovery
}

// SPDK perf's percentile cutoffs for the latency summary.
var summaryCutoffs = []float64{1, 10, 25, 50, 75, 90, 95, 98, 99, 99.5, 99.9, 99.99, 99.999, 99.9999, 99.99999}

const (
	headerLabel = "Device Information"
	ruleTable   = "========================================================"
	ruleSummary = "================================================================================="
	ruleBuckets = "=============================================================================="
	// fromCoreWidth is the width of " from core %2d", which SPDK adds to the longest
	// device name to size the label column.
	fromCoreWidth = len(" from core  0")
	// opWidth is the width of the " read " / " write" suffix of mixed rows.
	opWidth = len(" write")
	// bucketsPerOctave splits each power of two of nanoseconds into this many equal
	// ranges for the -LL listing: fine enough to show a distribution's shape (about 6%
	// wide) and coarse enough to stay readable. HDR's own buckets are powers of two as
	// well and never straddle these ranges, so each count lands in exactly one range.
	bucketsPerOctave = 16
)

// WriteText writes res in SPDK perf's text layout: a row per job (namespace per core)
// and a Total row, then with LatencySummary the percentiles and with Buckets the
// histogram of every job. Totals' latencies come from merged histograms.
func WriteText(w io.Writer, res workload.Result, opts TextOptions) error {
	var b strings.Builder
	writeText(&b, res, opts)
	writeRecoveryText(&b, opts.Recovery)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: write text: %w", err)
	}
	return nil
}

func writeText(b *strings.Builder, res workload.Result, opts TextOptions) {
	dur := res.Duration
	switch {
	case res.Err != nil:
		fmt.Fprintf(b, "NOTE: the run failed after %.3f s (%v); the numbers cover the measured part only.\n",
			dur.Seconds(), res.Err)
	case res.Interrupted:
		fmt.Fprintf(b, "NOTE: the run was interrupted after %.3f s; the numbers cover the measured part only.\n",
			dur.Seconds())
	}

	jobs := make([]jobSides, len(res.Jobs))
	nameWidth := 0
	for i, j := range res.Jobs {
		jobs[i] = sidesOf(j)
		nameWidth = max(nameWidth, len(j.Target.Name))
	}
	labelWidth := nameWidth + fromCoreWidth
	if opts.Mixed {
		labelWidth += opWidth
	}
	// SPDK lets a name shorter than 5 characters push the header out of line; keep the
	// colons aligned instead.
	labelWidth = max(labelWidth, len(headerLabel))
	label := func(j workload.Job, op string) string {
		l := fmt.Sprintf("%-*.*s from core %2d", nameWidth, nameWidth, j.Target.Name, j.Core)
		if opts.Mixed {
			l += fmt.Sprintf(" %-5s", op)
		}
		return l
	}
	row := func(l string, s side) {
		fmt.Fprintf(b, "%-*s: %10.2f %10.2f %10.2f %10.2f %10.2f\n", labelWidth, l,
			s.iops(dur), s.mibps(dur), s.meanNS()/1e3, float64(s.minNS())/1e3, float64(s.maxNS())/1e3)
	}

	b.WriteString(ruleTable + "\n")
	fmt.Fprintf(b, "%*s\n", labelWidth+47, "Latency(us)")
	fmt.Fprintf(b, "%-*s: %10s %10s %10s %10s %10s\n", labelWidth, headerLabel,
		"IOPS", "MiB/s", "Average", "min", "max")
	for i, j := range res.Jobs {
		row(label(j, ""), jobs[i].all)
		if opts.Mixed {
			row(label(j, "read"), jobs[i].read)
			row(label(j, "write"), jobs[i].write)
		}
	}
	tr, tw, ta, _ := totals(jobs)
	b.WriteString(ruleTable + "\n")
	row("Total", ta)
	if opts.Mixed {
		row("Total read", tr)
		row("Total write", tw)
	}
	b.WriteString("\n")

	writeCPU(b, res)
	writeErrors(b, res, jobs, ta)
	writeVerify(b, res)

	if !opts.LatencySummary && !opts.Buckets {
		return
	}
	for i, j := range res.Jobs {
		writeSummary(b, fmt.Sprintf("Summary latency data for %-43.43s from core %d:", j.Target.Name, j.Core), jobs[i].all)
		if opts.Mixed {
			writeSummary(b, fmt.Sprintf("Summary read latency data for %-43.43s from core %d:", j.Target.Name, j.Core), jobs[i].read)
			writeSummary(b, fmt.Sprintf("Summary write latency data for %-43.43s from core %d:", j.Target.Name, j.Core), jobs[i].write)
		}
	}
	if len(res.Jobs) > 1 {
		writeSummary(b, "Summary latency data for all jobs merged:", ta)
	}
	if !opts.Buckets {
		return
	}
	for i, j := range res.Jobs {
		writeBuckets(b, fmt.Sprintf("Latency histogram for %-43.43s from core %d:", j.Target.Name, j.Core), jobs[i].all)
		if opts.Mixed {
			writeBuckets(b, fmt.Sprintf("Read latency histogram for %-43.43s from core %d:", j.Target.Name, j.Core), jobs[i].read)
			writeBuckets(b, fmt.Sprintf("Write latency histogram for %-43.43s from core %d:", j.Target.Name, j.Core), jobs[i].write)
		}
	}
	if len(res.Jobs) > 1 {
		writeBuckets(b, "Latency histogram for all jobs merged:", ta)
	}
}

// writeCPU prints the worker threads' CPU after the table (SPDK's table has no CPU
// column; adding one would break scripts that cut columns by position): the total and,
// with more than one worker, each worker.
func writeCPU(b *strings.Builder, res workload.Result) {
	if len(res.Workers) == 0 {
		return
	}
	line := func(label string, c workload.WorkerCPU) {
		fmt.Fprintf(b, "%-21s: %10.2f ns per I/O (%.3f s user, %.3f s system)\n", label, c.NSPerIO(), c.User.Seconds(), c.System.Seconds())
	}
	line("CPU of worker threads", res.TotalCPU())
	if len(res.Workers) > 1 {
		for _, w := range res.Workers {
			line(fmt.Sprintf("  worker on core %2d", w.Core), w)
		}
	}
	b.WriteString("\n")
}

// writeErrors lists failed I/Os, which SPDK's table does not show: a row's IOPS count
// only successful I/Os.
func writeErrors(b *strings.Builder, res workload.Result, jobs []jobSides, total side) {
	if total.errors == 0 {
		return
	}
	for i, j := range res.Jobs {
		if jobs[i].all.errors == 0 {
			continue
		}
		fmt.Fprintf(b, "I/O errors on %s from core %d: %d (read %d, write %d)\n",
			j.Target.Name, j.Core, jobs[i].all.errors, jobs[i].read.errors, jobs[i].write.errors)
	}
	fmt.Fprintf(b, "I/O errors in total: %d\n\n", total.errors)
}

func writeVerify(b *strings.Builder, res workload.Result) {
	printed := false
	for _, j := range res.Jobs {
		v := j.Verify
		if v.Checked == 0 && v.Mismatched == 0 && v.Unwritten == 0 {
			continue
		}
		printed = true
		fmt.Fprintf(b, "Verify on %s from core %d: %d blocks checked, %d mismatched, %d unwritten\n",
			j.Target.Name, j.Core, v.Checked, v.Mismatched, v.Unwritten)
		for _, line := range v.First {
			fmt.Fprintf(b, "  %s\n", line)
		}
	}
	if printed {
		b.WriteString("\n")
	}
}

// writeSummary prints the latency at SPDK's cutoffs, each the upper end of the
// histogram bucket where the cumulative share reaches the cutoff, as SPDK does.
func writeSummary(b *strings.Builder, title string, s side) {
	b.WriteString(title + "\n" + ruleSummary + "\n")
	if s.hist.TotalCount() == 0 {
		b.WriteString("  no latency samples\n\n")
		return
	}
	for _, p := range summaryCutoffs {
		fmt.Fprintf(b, "%9.5f%% : %9.3fus\n", p, float64(s.hist.ValueAtPercentile(p))/1e3)
	}
	b.WriteString("\n")
}

// bucketRange returns the -LL range [lo, lo+width) holding v nanoseconds.
func bucketRange(v int64) (lo, width int64) {
	if v < bucketsPerOctave {
		return v, 1
	}
	octave := bits.Len64(uint64(v)) - 1 // v is in [2^octave, 2^(octave+1))
	width = int64(1) << (octave - bits.Len64(bucketsPerOctave-1))
	return v &^ (width - 1), width
}

// writeBuckets prints the non-empty ranges with the cumulative share and count.
func writeBuckets(b *strings.Builder, title string, s side) {
	b.WriteString(title + "\n" + ruleBuckets + "\n")
	total := s.hist.TotalCount()
	if total == 0 {
		b.WriteString("  no latency samples\n\n")
		return
	}
	b.WriteString("       Range in us     Cumulative    IO count\n")
	var lo, width, count, soFar int64
	flush := func() {
		if count == 0 {
			return
		}
		soFar += count
		fmt.Fprintf(b, "%9.3f - %9.3f: %9.4f%%  (%9d)\n",
			float64(lo)/1e3, float64(lo+width)/1e3, float64(soFar)*100/float64(total), count)
		count = 0
	}
	for _, bar := range s.hist.Distribution() {
		if bar.Count == 0 {
			continue
		}
		l, wd := bucketRange(bar.From)
		if l != lo || wd != width {
			flush()
			lo, width = l, wd
		}
		count += bar.Count
	}
	flush()
	b.WriteString("\n")
}
