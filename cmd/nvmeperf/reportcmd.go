package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/report/plot"
)

func (a *app) reportCommand() *cobra.Command {
	var format, output, csvFile, plotDir, plotFormat, percentiles string
	var latency int
	cmd := &cobra.Command{
		Use:   "report FILE.json",
		Short: "Re-render a saved run or sweep: text (-L/-LL), JSON, CSV, plots",
		Long: `report reads a saved run (nvmeperf.result/v1) or sweep (nvmeperf.sweep/v1) document and
writes it again: as text exactly as the run printed it (-L latency summary, -LL also the
buckets), or for a sweep its IOPS and p99 matrices; as JSON (with --percentiles
recomputed from the stored histograms); as CSV (one row per point); and with --plot DIR
as plots: a sweep's iops and latency plots, or a run's latency percentile plot (reads
and writes, log scale).`,
		Example: `  nvmeperf report -LL result.json
  nvmeperf report --output-format csv sweep.json > sweep.csv
  nvmeperf report --plot plots result.json
  nvmeperf report --output-format json --percentiles 50,99,99.99,99.9999 result.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			format = strings.ToLower(format)
			if format != "text" && format != "json" && format != "csv" {
				return usagef("--output-format %q: want text, json or csv", format)
			}
			if latency > 2 {
				return usagef("-L given %d times: use -L for the latency summary or -LL for the bucket listing", latency)
			}
			plotFormat = strings.ToLower(plotFormat)
			if plotFormat != "svg" && plotFormat != "png" {
				return usagef("--plot-format %q: want svg or png", plotFormat)
			}
			var percents []float64
			if percentiles != "" {
				var err error
				if percents, err = parsePercentiles(percentiles); err != nil {
					return err
				}
			}
			l, err := report.LoadFile(args[0])
			if err != nil {
				return a.fail(exitUsage, "cannot read: %v", err)
			}
			if err := checkOutputs([]outputPath{
				{flag: "--output", path: output},
				{flag: "--csv", path: csvFile},
				{flag: "--plot", path: plotDir, files: plotFiles(plotFormat, l.Sweep != nil)},
			}, args); err != nil {
				return err
			}
			sw := l.Sweep
			if l.Run != nil {
				sw = report.RunAsSweep(l.Run)
			}
			if percents != nil {
				for _, p := range sw.Points {
					if p.Result != nil {
						if err := report.Recompute(p.Result, percents); err != nil {
							return a.fail(exitUsage, "%s: %v", args[0], err)
						}
					}
				}
			}
			if csvFile != "" {
				if err := writeFileWith(csvFile, "--csv", func(w io.Writer) error { return report.WriteCSV(w, sw) }); err != nil {
					return err
				}
			}
			if plotDir != "" {
				var paths []string
				if l.Run != nil {
					paths, err = plot.WriteRun(plotDir, plotFormat, l.Run)
				} else {
					paths, err = plot.WriteSweep(plotDir, plotFormat, l.Sweep)
				}
				if err != nil {
					return fmt.Errorf("--plot %s: %w", plotDir, err)
				}
				a.notice("plots: %s", strings.Join(paths, ", "))
			}
			a.opts.outputFile = output
			w, closeOut, err := a.output()
			if err != nil {
				return err
			}
			opts := report.TextOptions{LatencySummary: latency >= 1, Buckets: latency >= 2}
			switch {
			case format == "csv":
				err = report.WriteCSV(w, sw)
			case format == "json" && l.Run != nil:
				err = report.WriteJSON(w, *l.Run)
			case format == "json":
				err = report.WriteSweepJSON(w, l.Sweep)
			case l.Run != nil:
				err = writeRunText(w, l.Run, opts)
			default:
				err = report.WriteSweepText(w, l.Sweep, opts, latency >= 1)
			}
			if cerr := closeOut(); err == nil {
				err = cerr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "output-format", "text", "text, json or csv")
	f.CountVarP(&latency, "enable-sw-latency-tracking", "L", "-L: latency summary; -LL: also the bucket listing")
	f.StringVar(&output, "output", "", "write the report to FILE instead of stdout")
	f.StringVar(&csvFile, "csv", "", "also write one CSV row per point to FILE")
	f.StringVar(&plotDir, "plot", "", "write plots into DIR (created if missing)")
	f.StringVar(&plotFormat, "plot-format", "svg", "svg or png")
	f.StringVar(&percentiles, "percentiles", "", "recompute the JSON percentiles from the histograms, comma list (e.g. 50,99,99.999)")
	return cmd
}

// writeRunText renders a saved run as the live run printed it, followed by the
// repetitions' table when it was repeated and a note for merged results.
func writeRunText(w io.Writer, d *report.Document, opts report.TextOptions) error {
	res, err := d.Result()
	if err != nil {
		return err
	}
	opts.Mixed = d.Config.Workload == "rw" || d.Config.Workload == "randrw"
	if len(d.Repetitions) > 0 {
		fmt.Fprintf(w, "All %d repetitions merged:\n", len(d.Repetitions))
	}
	if d.Merge != nil {
		fmt.Fprintf(w, "Merged from %d sources over their common %.3f s window (rates: %s):\n", d.Merge.Sources, d.Merge.CommonSeconds, d.Merge.Rates)
	}
	if err := report.WriteText(w, res, opts); err != nil {
		return err
	}
	if len(d.Repetitions) > 0 {
		return report.WriteRepetitionsText(w, d)
	}
	return nil
}
