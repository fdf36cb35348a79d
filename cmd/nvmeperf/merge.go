package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nvmeperf/nvmeperf/report"
)

func (a *app) mergeCommand() *cobra.Command {
	var format, output string
	var force bool
	cmd := &cobra.Command{
		Use:   "merge A.json B.json...",
		Short: "Merge runs of one configuration taken at the same time (several hosts or processes)",
		Long: `merge combines run documents taken at the same time against the same kind of device
(several hosts or processes driving one target or fabric) into one result: latency
histograms merged exactly (so every percentile is that of all I/Os together), IOPS and
MiB/s the sum of the sources' rates, duration the window all sources were measuring in.
Every source's jobs are kept, and the sources' documents are kept whole under "sources".

Runs of different configurations (I/O size, pattern, depth, qpairs, workers, device
model), or whose measured windows do not overlap, are refused with exit status 2 unless
--force.`,
		Example: `  nvmeperf merge host1.json host2.json > merged.json`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			format = strings.ToLower(format)
			if format != "json" && format != "text" {
				return usagef("--output-format %q: want json or text", format)
			}
			if err := checkOutputs([]outputPath{{flag: "--output", path: output}}, args); err != nil {
				return err
			}
			var docs []report.Document
			for _, path := range args {
				l, err := report.LoadFile(path)
				if err != nil {
					return a.fail(exitUsage, "cannot merge: %v", err)
				}
				if l.Run == nil {
					return a.fail(exitUsage, "cannot merge: %s is a sweep; merge takes run documents", path)
				}
				docs = append(docs, *l.Run)
			}
			m, err := report.MergeConcurrent(docs, force)
			var inc *report.IncomparableError
			if errors.As(err, &inc) {
				return a.fail(exitUsage, "cannot merge: %s (--force merges anyway)", inc.Why)
			}
			if err != nil {
				return a.fail(exitUsage, "cannot merge: %v", err)
			}
			a.opts.outputFile = output
			w, closeOut, err := a.output()
			if err != nil {
				return err
			}
			if format == "json" {
				err = report.WriteJSON(w, m)
			} else {
				err = writeMergeSummary(w, m.Merge)
				if err == nil {
					err = writeRunText(w, &m, report.TextOptions{LatencySummary: true})
				}
			}
			if cerr := closeOut(); err == nil {
				err = cerr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "output-format", "json", "json or text")
	f.StringVar(&output, "output", "", "write the merged result to FILE instead of stdout")
	f.BoolVar(&force, "force", false, "merge runs whose configurations differ or whose windows do not overlap")
	return cmd
}

// writeMergeSummary says what was merged before the merged report: the sources (ranks),
// how far apart they started and the common window the rates cover.
func writeMergeSummary(w io.Writer, mi *report.MergeInfo) error {
	what := fmt.Sprintf("%d sources", mi.Sources)
	if mi.WorldSize > 0 {
		what = fmt.Sprintf("ranks 0..%d of a run across hosts", mi.WorldSize-1)
	}
	_, err := fmt.Fprintf(w, "Merged %s: start skew %.3f ms, common window %.3f s from %s\n",
		what, mi.StartSkewSeconds*1e3, mi.CommonSeconds, mi.CommonStart)
	return err
}
