package report_test

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/report/reporttest"
)

// The model sweep: 100 µs per I/O, saturating at 40 K IOPS; q=4 qpairs=1 failed.
func modelSweep() *report.SweepDocument {
	return reporttest.Sweep([]int{1, 2, 4, 8, 16}, []int{1, 2}, reporttest.DefaultModel, 4)
}

func TestSweepTextGolden(t *testing.T) {
	var b bytes.Buffer
	if err := report.WriteSweepText(&b, modelSweep(), report.TextOptions{}, false); err != nil {
		t.Fatal(err)
	}
	report.Golden(t, "sweep_text.golden", b.Bytes())
	text := b.String()
	// Hand check: q=8 qpairs=2 is 16 in flight, saturated at 40000 IOPS with 400 µs
	// mean latency (p99 ≈ 1.49 × mean with latencies spread over 0.5-1.5 × mean).
	for _, want := range []string{"4k randread: IOPS", "4k randread: p99 latency (us)", "failed", "40000", "Failed points:\n  q=4 qpairs=1"} {
		if !strings.Contains(text, want) {
			t.Errorf("sweep text lacks %q", want)
		}
	}
}

func TestSweepCSVGolden(t *testing.T) {
	var b bytes.Buffer
	if err := report.WriteCSV(&b, modelSweep()); err != nil {
		t.Fatal(err)
	}
	report.Golden(t, "sweep.csv.golden", b.Bytes())
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v", err)
	}
	if len(rows) != 1+10 || strings.Join(rows[0], ",") != strings.Join(report.CSVHeader, ",") {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, r := range rows[1:] {
		q, _ := strconv.Atoi(r[col["queue_depth"]])
		n, _ := strconv.Atoi(r[col["qpairs"]])
		if q == 4 && n == 1 {
			if r[col["status"]] != "failed" || r[col["error"]] == "" || r[col["iops"]] != "" {
				t.Errorf("failed point row %v", r)
			}
			continue
		}
		iops, _ := strconv.ParseFloat(r[col["iops"]], 64)
		want := min(float64(q*n)*10000, 40000)
		if iops < want*0.999 || iops > want*1.001 {
			t.Errorf("q=%d qpairs=%d: %v IOPS, want %v", q, n, iops, want)
		}
	}
}
