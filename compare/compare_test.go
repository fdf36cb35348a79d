package compare

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/report/reporttest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./compare -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./compare -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func run(m reporttest.Model) *report.Loaded {
	d := reporttest.Run(reporttest.Params(32, 1, 4096, "randread", 100), m)
	return &report.Loaded{Run: &d}
}

func slower(f float64) reporttest.Model {
	m := reporttest.DefaultModel
	m.Slow = f
	return m
}

func rowOf(t *testing.T, r *Result, point, metric string) Row {
	t.Helper()
	for _, row := range r.Rows {
		if (point == "" || row.Point == point) && row.Metric == metric {
			return row
		}
	}
	t.Fatalf("no row %s %s", point, metric)
	return Row{}
}

func TestSameRunIsNoRegression(t *testing.T) {
	r, err := Compare("base.json", run(reporttest.DefaultModel), "new.json", run(reporttest.DefaultModel), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Regressed() || r.Verdict() != "no regression" || len(r.Rows) != len(report.MetricNames) {
		t.Fatalf("regressed %v, verdict %q, %d rows", r.Regressed(), r.Verdict(), len(r.Rows))
	}
	for _, row := range r.Rows {
		if row.DeltaPct == nil || *row.DeltaPct != 0 || row.Verdict != VerdictOK {
			t.Errorf("%s: delta %v verdict %s", row.Metric, row.DeltaPct, row.Verdict)
		}
	}
}

func TestSlowerRunRegresses(t *testing.T) {
	r, err := Compare("base.json", run(reporttest.DefaultModel), "new.json", run(slower(1.25)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Regressed() {
		t.Fatal("25 % slower is not a regression")
	}
	iops := rowOf(t, r, "", "iops")
	if iops.Verdict != VerdictRegression || *iops.DeltaPct > -19 || *iops.DeltaPct < -21 {
		t.Errorf("iops row %+v: want a regression of -20 %%", iops)
	}
	p99 := rowOf(t, r, "", "p99")
	if p99.Verdict != VerdictRegression || *p99.DeltaPct < 20 || *p99.DeltaPct > 30 {
		t.Errorf("p99 row %+v: want a regression of about +25 %%", p99)
	}
	// p99.9 moved as much but has no threshold by default.
	if row := rowOf(t, r, "", "p99.9"); row.Verdict != VerdictOK || row.Threshold != nil {
		t.Errorf("p99.9 row %+v: no default threshold", row)
	}
	v := r.Verdict()
	for _, want := range []string{"iops", "p99", "q=32 qpairs=1"} {
		if !strings.Contains(v, want) {
			t.Errorf("verdict %q does not name %q", v, want)
		}
	}
	// Within a looser threshold it passes; a faster run never regresses.
	th, err := ParseThresholds("iops=-30%,mibps=off,p99=+30%", DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := Compare("b", run(reporttest.DefaultModel), "n", run(slower(1.25)), Options{Thresholds: th}); r.Regressed() {
		t.Errorf("with %v: %s", th, r.Verdict())
	}
	if r, _ := Compare("b", run(reporttest.DefaultModel), "n", run(slower(0.8)), Options{}); r.Regressed() {
		t.Errorf("faster run: %s", r.Verdict())
	}
}

func TestIncomparable(t *testing.T) {
	base := run(reporttest.DefaultModel)
	other := reporttest.Run(reporttest.Params(32, 1, 131072, "randread", 100), reporttest.DefaultModel)
	_, err := Compare("b", base, "n", &report.Loaded{Run: &other}, Options{})
	var inc *IncomparableError
	if !errors.As(err, &inc) || !strings.Contains(inc.Why, "io_size 4096 vs 131072") {
		t.Fatalf("error %v: want one naming io_size", err)
	}
	r, err := Compare("b", base, "n", &report.Loaded{Run: &other}, Options{Force: true})
	if err != nil || len(r.Forced) == 0 {
		t.Fatalf("--force: %v, forced %v", err, r.Forced)
	}
	sw := &report.Loaded{Sweep: reporttest.Sweep([]int{1, 2}, []int{1}, reporttest.DefaultModel, 0)}
	if _, err := Compare("b", base, "n", sw, Options{}); !errors.As(err, &inc) || !strings.Contains(inc.Why, "sweep") {
		t.Errorf("run vs sweep: %v", err)
	}
}

func TestSweepsMatchPointByPoint(t *testing.T) {
	depths, qpairs := []int{1, 4, 16}, []int{1, 2}
	base := &report.Loaded{Sweep: reporttest.Sweep(depths, qpairs, reporttest.DefaultModel, 0)}
	// The new sweep is 10 % slower everywhere and its q=4 qpairs=1 point failed.
	nw := &report.Loaded{Sweep: reporttest.Sweep(depths, qpairs, slower(1.1), 4)}
	r, err := Compare("base.json", base, "new.json", nw, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(r.Rows), 5*len(report.MetricNames)+1; got != want {
		t.Fatalf("%d rows, want %d", got, want)
	}
	failed := rowOf(t, r, "q=4 qpairs=1 workers=1 o=4096 w=randread", "status")
	if failed.Verdict != VerdictFailed {
		t.Errorf("failed point row %+v", failed)
	}
	if row := rowOf(t, r, "q=16 qpairs=2 workers=1 o=4096 w=randread", "iops"); row.Verdict != VerdictRegression {
		t.Errorf("q=16 qpairs=2 iops %+v: want a regression", row)
	}
	// A point present on one side only makes the sweeps incomparable.
	short := &report.Loaded{Sweep: reporttest.Sweep([]int{1, 4}, qpairs, reporttest.DefaultModel, 0)}
	var inc *IncomparableError
	if _, err := Compare("base.json", base, "short.json", short, Options{}); !errors.As(err, &inc) || !strings.Contains(inc.Why, "q=16") {
		t.Errorf("missing point: %v", err)
	}

	for _, f := range []struct {
		name  string
		write func(*bytes.Buffer, *Result) error
	}{
		{"sweep.txt.golden", func(b *bytes.Buffer, r *Result) error { return WriteText(b, r) }},
		{"sweep.md.golden", func(b *bytes.Buffer, r *Result) error { return WriteMarkdown(b, r) }},
		{"sweep.json.golden", func(b *bytes.Buffer, r *Result) error { return WriteJSON(b, r) }},
		{"sweep.junit.xml.golden", func(b *bytes.Buffer, r *Result) error { return WriteJUnit(b, r) }},
	} {
		var b bytes.Buffer
		if err := f.write(&b, r); err != nil {
			t.Fatal(err)
		}
		golden(t, f.name, b.Bytes())
	}

	// JUnit: one test case per point and metric, failures where the verdict failed.
	var b bytes.Buffer
	if err := WriteJUnit(&b, r); err != nil {
		t.Fatal(err)
	}
	var js junitSuites
	if err := xml.Unmarshal(b.Bytes(), &js); err != nil {
		t.Fatalf("JUnit is not XML: %v", err)
	}
	cases, failures := 0, 0
	for _, s := range js.Suites {
		for _, c := range s.Cases {
			cases++
			if c.Failure != nil {
				failures++
			}
		}
	}
	if cases != len(r.Rows) || failures != len(r.Regressions) || js.Tests != cases || js.Failures != failures || failures == 0 {
		t.Errorf("JUnit: %d cases (%d), %d failures (%d); rows %d, regressions %d", cases, js.Tests, failures, js.Failures,
			len(r.Rows), len(r.Regressions))
	}
	var doc map[string]any
	b.Reset()
	if err := WriteJSON(&b, r); err != nil || json.Unmarshal(b.Bytes(), &doc) != nil || doc["regression"] != true {
		t.Errorf("JSON: %v %v", err, doc["regression"])
	}
}

func TestRepetitionsUseSignificance(t *testing.T) {
	p := reporttest.Params(32, 1, 4096, "randread", 100)
	rep := func(m reporttest.Model, jitter float64) *report.Loaded {
		d, err := reporttest.Repeated(p, m, 6, jitter)
		if err != nil {
			t.Fatal(err)
		}
		return &report.Loaded{Run: &d}
	}
	// Noisy repetitions (±15 %) whose medians differ by 6 %: the threshold is crossed, the
	// change is not significant.
	r, err := Compare("b", rep(reporttest.DefaultModel, 0.3), "n", rep(slower(1.06), 0.3), Options{})
	if err != nil {
		t.Fatal(err)
	}
	iops := rowOf(t, r, "", "iops")
	if iops.P == nil || iops.Verdict != VerdictInsignificant || r.Regressed() {
		t.Errorf("noisy: iops %+v (p %v), regressed %v", iops, iops.P, r.Regressed())
	}
	// Quiet repetitions 20 % slower: significant.
	r, err = Compare("b", rep(reporttest.DefaultModel, 0.01), "n", rep(slower(1.2), 0.01), Options{})
	if err != nil {
		t.Fatal(err)
	}
	iops = rowOf(t, r, "", "iops")
	if iops.P == nil || *iops.P > 0.05 || iops.Verdict != VerdictRegression {
		t.Errorf("quiet: iops %+v (p %v)", iops, *iops.P)
	}
}

func TestParseThresholds(t *testing.T) {
	th, err := ParseThresholds("iops=-3%, p99=+15%,p99.99=50,mibps=off,errors=+2", DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	want := Thresholds{"iops": -3, "p99": 15, "p99.99": 50, "errors": 2}
	if len(th) != len(want) {
		t.Errorf("got %v, want %v", th, want)
	}
	for k, v := range want {
		if th[k] != v {
			t.Errorf("%s = %v, want %v", k, th[k], v)
		}
	}
	if th, _ := ParseThresholds("iops=3", nil); th["iops"] != -3 {
		t.Errorf("an unsigned iops threshold means a drop: %v", th)
	}
	for _, bad := range []string{"iops", "foo=3%", "iops=+3%", "p99=-5%", "p99=x", "errors=5%", "errors=-1"} {
		if _, err := ParseThresholds(bad, DefaultThresholds()); err == nil || !strings.Contains(err.Error(), "--threshold") {
			t.Errorf("%q: error %v, want one naming --threshold", bad, err)
		}
	}
}
