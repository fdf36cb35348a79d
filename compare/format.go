package compare

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// metricLabel names a metric with its unit in tables.
var metricLabel = map[string]string{
	"iops": "IOPS", "mibps": "MiB/s", "mean": "mean (us)", "p50": "p50 (us)", "p99": "p99 (us)",
	"p99.9": "p99.9 (us)", "p99.99": "p99.99 (us)", "errors": "errors", "status": "status",
}

func formatValue(metric string, v float64) string {
	switch metric {
	case "iops", "errors":
		return fmt.Sprintf("%.0f", v)
	case "mibps":
		return fmt.Sprintf("%.2f", v)
	case "status":
		return ""
	}
	return fmt.Sprintf("%.2f", v/1e3)
}

func formatDelta(r Row) string {
	if r.Metric == "status" {
		return ""
	}
	if r.Metric == "errors" {
		return fmt.Sprintf("%+.0f", r.New-r.Base)
	}
	if r.DeltaPct == nil {
		return "new"
	}
	return fmt.Sprintf("%+.2f%%", *r.DeltaPct)
}

func formatThreshold(metric string, t *float64) string {
	if t == nil {
		return "-"
	}
	if metric == "errors" {
		return fmt.Sprintf("%+.0f", *t)
	}
	return fmt.Sprintf("%+g%%", *t)
}

func formatP(r Row) string {
	if r.P == nil {
		return "-"
	}
	return fmt.Sprintf("p=%.3f n=%d+%d", *r.P, r.N1, r.N2)
}

// table is the rows grouped by point, formatted cells.
func (r *Result) table() (points []string, cells map[string][][]string) {
	cells = map[string][][]string{}
	for _, row := range r.Rows {
		if _, ok := cells[row.Point]; !ok {
			points = append(points, row.Point)
		}
		cells[row.Point] = append(cells[row.Point], []string{
			metricLabel[row.Metric], formatValue(row.Metric, row.Base), formatValue(row.Metric, row.New),
			formatDelta(row), formatThreshold(row.Metric, row.Threshold), formatP(row), verdictText(row),
		})
	}
	return points, cells
}

func verdictText(r Row) string {
	if r.Verdict == VerdictFailed && r.Note != "" {
		return "failed: " + r.Note
	}
	return r.Verdict
}

var header = []string{"metric", "base", "new", "delta", "threshold", "significance", "verdict"}

// WriteText writes the delta table per point, the notes and the verdict.
func WriteText(w io.Writer, r *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "base: %s\nnew:  %s\n\n", r.Base, r.New)
	points, cells := r.table()
	for _, p := range points {
		fmt.Fprintf(&b, "%s\n", p)
		fmt.Fprintf(&b, "  %-12s %14s %14s %10s %10s %16s  %s\n", header[0], header[1], header[2], header[3], header[4], header[5], header[6])
		for _, c := range cells[p] {
			fmt.Fprintf(&b, "  %-12s %14s %14s %10s %10s %16s  %s\n", c[0], c[1], c[2], c[3], c[4], c[5], c[6])
		}
		b.WriteString("\n")
	}
	writeNotes(&b, r, "")
	fmt.Fprintf(&b, "Verdict: %s\n", r.Verdict())
	_, err := io.WriteString(w, b.String())
	return err
}

func writeNotes(b *strings.Builder, r *Result, bullet string) {
	for _, f := range r.Forced {
		fmt.Fprintf(b, "%sCompared despite a difference (--force): %s\n", bullet, f)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(b, "%sNote: %s\n", bullet, n)
	}
	if len(r.Forced)+len(r.Notes) > 0 {
		b.WriteString("\n")
	}
}

// WriteMarkdown writes the same as WriteText as GitHub-flavoured markdown (a CI job
// summary or pull-request comment).
func WriteMarkdown(w io.Writer, r *Result) error {
	var b strings.Builder
	icon := "✅"
	if r.Regressed() {
		icon = "❌"
	}
	fmt.Fprintf(&b, "### nvmeperf compare: %s %s\n\n", icon, r.Verdict())
	fmt.Fprintf(&b, "Base `%s`, new `%s`.\n\n", r.Base, r.New)
	points, cells := r.table()
	for _, p := range points {
		fmt.Fprintf(&b, "**%s**\n\n", p)
		b.WriteString("| " + strings.Join(header, " | ") + " |\n")
		b.WriteString("|---|---:|---:|---:|---:|---|---|\n")
		for _, c := range cells[p] {
			if strings.HasPrefix(c[6], VerdictRegression) || strings.HasPrefix(c[6], VerdictFailed) {
				c[6] = "**" + c[6] + "**"
			}
			b.WriteString("| " + strings.Join(c, " | ") + " |\n")
		}
		b.WriteString("\n")
	}
	writeNotes(&b, r, "- ")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the result as one JSON document.
func WriteJSON(w io.Writer, r *Result) error {
	doc := struct {
		Schema     string `json:"schema"`
		Regression bool   `json:"regression"`
		Verdict    string `json:"verdict"`
		*Result
	}{"nvmeperf.compare/v1", r.Regressed(), r.Verdict(), r}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("compare: encode JSON: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes a JUnit XML report: one test suite per point, one test case per
// metric, failed when the metric regressed.
func WriteJUnit(w io.Writer, r *Result) error {
	s := junitSuites{Name: "nvmeperf compare"}
	index := map[string]int{}
	for _, row := range r.Rows {
		i, ok := index[row.Point]
		if !ok {
			i = len(s.Suites)
			index[row.Point] = i
			s.Suites = append(s.Suites, junitSuite{Name: row.Point})
		}
		c := junitCase{Name: row.Metric, ClassName: "nvmeperf." + row.Point,
			SystemOut: fmt.Sprintf("base %s, new %s, delta %s, threshold %s, %s, %s",
				formatValue(row.Metric, row.Base), formatValue(row.Metric, row.New), formatDelta(row),
				formatThreshold(row.Metric, row.Threshold), formatP(row), verdictText(row))}
		if row.Verdict == VerdictRegression || row.Verdict == VerdictFailed {
			c.Failure = &junitFailure{Message: row.describe(), Type: row.Verdict, Text: c.SystemOut}
			s.Suites[i].Failures++
			s.Failures++
		}
		s.Suites[i].Cases = append(s.Suites[i].Cases, c)
		s.Suites[i].Tests++
		s.Tests++
	}
	b, err := xml.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("compare: encode JUnit: %w", err)
	}
	_, err = w.Write(append(append([]byte(xml.Header), b...), '\n'))
	return err
}
