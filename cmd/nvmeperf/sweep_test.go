package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/report/reporttest"
	"github.com/nvmeperf/nvmeperf/sweep"
	"github.com/nvmeperf/nvmeperf/workload"
)

// plannedPoints plans the points of a sweep command line as the sweep does.
func plannedPoints(t *testing.T, a *app, depths []int) []*sweepPoint {
	t.Helper()
	var pts []*sweepPoint
	for _, q := range depths {
		args := []string{"-q", strconv.Itoa(q), "-o", "4k", "-w", "randread", "-t", "10", "-a", "2", "-r", "trtype:sim"}
		run, err := a.parseRun(args)
		if err != nil {
			t.Fatal(err)
		}
		p, err := run.opts.validate(allowedCPUs())
		if err != nil {
			t.Fatal(err)
		}
		pts = append(pts, &sweepPoint{Point: sweep.Point{QPairsPerNS: 1, Params: reporttest.Params(q, 1, 4096, "randread", 100)},
			app: run, plan: p, args: args})
	}
	return pts
}

func TestSweepProgressTerminal(t *testing.T) {
	var errb bytes.Buffer
	a := newApp([]string{"nvmeperf", "sweep"}, &bytes.Buffer{}, &errb)
	pts := plannedPoints(t, a, []int{1, 2, 4, 8})
	s := &sweepProgress{a: a, points: pts, terminal: true, start: time.Now()}
	// A point is expected to take -t 10 + -a 2 + 0.5 s = 12.5 s. Two points done in 12 s
	// each, the third 6 s in: 30 s done, 12.5 - 6 + 12.5 = 19 s left, 30/49 of the bar.
	s.done = []time.Duration{12 * time.Second, 12 * time.Second}
	line := s.barLine(2, 6*time.Second, workload.Progress{IOPS: 1234})
	want := "[############--------] point 3/4 q=4 qpairs=1 workers=1 o=4096 w=randread: 1234 IOPS, 19s left"
	if line != want {
		t.Errorf("live line\n got %q\nwant %q", line, want)
	}
	// On a terminal a finished point leaves no line of its own; a failed one does.
	s.PointDone(2, 4, report.SweepPoint{Params: pts[2].Params, Result: &report.Document{Status: report.StatusOK}}, time.Second)
	if strings.Contains(errb.String(), "point 3/4") {
		t.Errorf("terminal: a line for a finished point: %q", errb.String())
	}
	s.PointDone(3, 4, report.SweepPoint{Params: pts[3].Params, Error: "cannot open"}, time.Second)
	if !strings.Contains(errb.String(), "nvmeperf: point 4/4 q=8 qpairs=1 workers=1 o=4096 w=randread: failed: cannot open\n") {
		t.Errorf("terminal: failed point line missing: %q", errb.String())
	}
}

func TestSweepProgressLines(t *testing.T) {
	var errb bytes.Buffer
	a := newApp([]string{"nvmeperf", "sweep"}, &bytes.Buffer{}, &errb)
	pts := plannedPoints(t, a, []int{1, 2})
	s := &sweepProgress{a: a, points: pts, start: time.Now()}
	if s.progress(0) != nil {
		t.Error("not a terminal and no --status-interval: no live progress wanted")
	}
	d := reporttest.Run(pts[0].Params, reporttest.DefaultModel)
	s.PointDone(0, 2, report.SweepPoint{Params: pts[0].Params, Result: &d}, time.Second)
	want := "nvmeperf: point 1/2 q=1 qpairs=1 workers=1 o=4096 w=randread: 10000 IOPS, 39.1 MiB/s, p99 149.1 us\n"
	if errb.String() != want {
		t.Errorf("finished point line\n got %q\nwant %q", errb.String(), want)
	}
}
