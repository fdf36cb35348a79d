package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nvmeperf/nvmeperf/compare"
	"github.com/nvmeperf/nvmeperf/report"
)

func (a *app) compareCommand() *cobra.Command {
	var thresholds, format, junit, output string
	var force bool
	cmd := &cobra.Command{
		Use:   "compare BASE.json NEW.json",
		Short: "Compare two saved runs or sweeps: delta table and a regression verdict (exit 0, 1 or 2)",
		Long: `compare matches two results point by point (runs, or sweeps by their parameters),
recomputes every percentile from the stored histograms and prints the change of IOPS,
MiB/s, mean, p50, p99, p99.9, p99.99 latency and errors.

Exit status: 0 when no threshold is crossed, 1 on a regression (the metric and point are
named), 2 when a file cannot be read or the results measure different things (I/O size,
pattern, depth, qpairs, workers, device model...: the difference is named; --force
compares anyway).

Default thresholds: iops=-5%, mibps=-5%, p99=+10%, errors=+0 (any new I/O error). Change or
add them with --threshold iops=-3%,p99=+15%,p99.99=+50%; "metric=off" removes one.

When both files were made with --repeat (2 or more repetitions), each metric is tested
with a Mann-Whitney U test (alpha 0.05): a threshold crossed by a change that is not
significant is reported as "no significant change", not as a regression. Four
repetitions per side are the fewest that can show significance.`,
		Example: `  nvmeperf compare baseline.json new.json
  nvmeperf compare --threshold iops=-3%,p99=+15% --format markdown --junit compare.xml base.json new.json`,
		Args: cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			th, err := compare.ParseThresholds(thresholds, compare.DefaultThresholds())
			if err != nil {
				return usagef("%v", err)
			}
			format = strings.ToLower(format)
			write := map[string]func(io.Writer, *compare.Result) error{
				"text": compare.WriteText, "markdown": compare.WriteMarkdown, "md": compare.WriteMarkdown, "json": compare.WriteJSON,
			}[format]
			if write == nil {
				return usagef("--format %q: want text, markdown or json", format)
			}
			if err := checkOutputs([]outputPath{{flag: "--output", path: output}, {flag: "--junit", path: junit}}, args); err != nil {
				return err
			}
			var loaded [2]*report.Loaded
			for i, path := range args {
				if loaded[i], err = report.LoadFile(path); err != nil {
					return a.fail(exitUsage, "cannot compare: %v", err)
				}
			}
			res, err := compare.Compare(args[0], loaded[0], args[1], loaded[1], compare.Options{Thresholds: th, Force: force})
			var inc *report.IncomparableError
			if errors.As(err, &inc) {
				return a.fail(exitUsage, "cannot compare %s with %s: %s", args[0], args[1], inc.Why)
			}
			if err != nil {
				return a.fail(exitUsage, "%v", err)
			}
			if junit != "" {
				if err := writeFileWith(junit, "--junit", func(w io.Writer) error { return compare.WriteJUnit(w, res) }); err != nil {
					return err
				}
			}
			if output != "" {
				err = writeFileWith(output, "--output", func(w io.Writer) error { return write(w, res) })
			} else {
				err = write(a.stdout, res)
			}
			if err != nil {
				return err
			}
			if res.Regressed() {
				a.status = exitFailed
				if format != "text" {
					fmt.Fprintf(a.stderr, "nvmeperf: %s\n", res.Verdict())
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&thresholds, "threshold", "", "metric=change,... e.g. iops=-3%,p99=+15% (defaults: iops=-5%,mibps=-5%,p99=+10%,errors=+0)")
	f.StringVar(&format, "format", "text", "text, markdown or json")
	f.StringVar(&junit, "junit", "", "also write a JUnit XML report (one test case per point and metric) to FILE")
	f.StringVar(&output, "output", "", "write the report to FILE instead of stdout")
	f.BoolVar(&force, "force", false, "compare results whose configurations differ")
	return cmd
}

// fail prints a message and sets the exit status without cobra's usage hint: the
// command line was right, the input was not.
func (a *app) fail(code int, format string, args ...any) error {
	fmt.Fprintf(a.stderr, "nvmeperf: "+format+"\n", args...)
	a.status = code
	return nil
}
