package sweep

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/report"
)

func TestParseList(t *testing.T) {
	size := func(s string) (int, error) {
		s = strings.TrimSpace(s)
		if k, ok := strings.CutSuffix(s, "k"); ok {
			n, err := ParseInt(k)
			return n << 10, err
		}
		return ParseInt(s)
	}
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"1,2,4", []int{1, 2, 4}},
		{"1-256", []int{1, 2, 4, 8, 16, 32, 64, 128, 256}},
		{"3-20", []int{3, 6, 12, 20}},
		{"8", []int{8}},
		{"4,1-4,4", []int{4, 1, 2}},
		{" 1 , 2 ", []int{1, 2}},
	} {
		got, err := ParseList("-q", c.in, ParseInt)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseList(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	got, err := ParseList("-o", "4k-32k,1k", size)
	if want := []int{4096, 8192, 16384, 32768, 1024}; err != nil || !slices.Equal(got, want) {
		t.Errorf("sizes = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "x", "1,,2", "8-2", "0-4", "1-", "-3"} {
		_, err := ParseList("-q", bad, ParseInt)
		if err == nil || !strings.Contains(err.Error(), "-q") {
			t.Errorf("ParseList(%q) error %v: want one naming -q", bad, err)
		}
	}
}

func TestPointsCartesianProduct(t *testing.T) {
	a := Axes{
		QueueDepths: []int{1, 2, 4}, QPairsPerNS: []int{1, 2}, Workers: []int{1, 2}, IOSizes: []int{4096, 131072},
		Patterns: []string{"randread", "randrw", "write"}, ReadPercents: []int{50, 70},
	}
	pts := a.Points()
	// Per size and worker count: depths × qpairs minus the (q=1, P=2) point = 5; patterns
	// contribute 1 (randread) + 2 mixes (randrw) + 1 (write).
	if want := 5 * 2 * 2 * 4; len(pts) != want {
		t.Fatalf("%d points, want %d", len(pts), want)
	}
	seen := map[report.SweepParams]bool{}
	for _, p := range pts {
		if seen[p.Params] {
			t.Errorf("point %s twice", p.Params)
		}
		seen[p.Params] = true
		if p.QPairsPerNS > p.Params.QueueDepth {
			t.Errorf("point %s: -P %d above its depth", p.Params, p.QPairsPerNS)
		}
		if p.Params.QPairs != p.Params.Workers*p.QPairsPerNS {
			t.Errorf("point %s: qpairs is not workers × -P %d", p.Params, p.QPairsPerNS)
		}
		switch p.Params.Pattern {
		case "randread":
			if p.Params.ReadPercent != 100 {
				t.Errorf("point %s: read pattern with read_percent %d", p.Params, p.Params.ReadPercent)
			}
		case "write":
			if p.Params.ReadPercent != 0 {
				t.Errorf("point %s: write pattern with read_percent %d", p.Params, p.Params.ReadPercent)
			}
		}
	}
	// Queue depth varies fastest.
	if pts[0].Params.QueueDepth != 1 || pts[1].Params.QueueDepth != 2 || pts[2].Params.QueueDepth != 4 {
		t.Errorf("first points %v %v %v: want depths 1, 2, 4", pts[0].Params, pts[1].Params, pts[2].Params)
	}
	c := a.Config(0, nil)
	if c.Repeat != 1 || !slices.Equal(c.QueueDepths, a.QueueDepths) {
		t.Errorf("config %+v", c)
	}
}

type recorder struct{ started, done []int }

func (r *recorder) PointStarted(i, n int, p Point) { r.started = append(r.started, i) }
func (r *recorder) PointDone(i, n int, sp report.SweepPoint, took time.Duration) {
	r.done = append(r.done, i)
}

func doc(status string) *report.Document {
	return &report.Document{Schema: report.Schema, Status: status}
}

func TestRunKeepsFailedPointsAndGoesOn(t *testing.T) {
	pts := Axes{QueueDepths: []int{1, 2, 4, 8}, QPairsPerNS: []int{1}, Workers: []int{1}, IOSizes: []int{4096},
		Patterns: []string{"randread"}}.Points()
	var d report.SweepDocument
	rec := &recorder{}
	Run(context.Background(), &d, pts, func(_ context.Context, i int, p Point) (*report.Document, error) {
		switch p.Params.QueueDepth {
		case 2:
			return nil, errors.New("cannot open the device")
		case 4:
			return doc(report.StatusIOErrors), errors.New("I/O errors")
		}
		return doc(report.StatusOK), nil
	}, rec)
	if d.Schema != report.SweepSchema || d.Status != report.SweepFailedPoints || d.Interrupted {
		t.Fatalf("schema %q status %q interrupted %v", d.Schema, d.Status, d.Interrupted)
	}
	if len(d.Points) != 4 || !slices.Equal(rec.started, []int{0, 1, 2, 3}) || !slices.Equal(rec.done, []int{0, 1, 2, 3}) {
		t.Fatalf("%d points, started %v, done %v", len(d.Points), rec.started, rec.done)
	}
	for i, want := range []bool{false, true, true, false} {
		if d.Points[i].Failed() != want {
			t.Errorf("point %d failed = %v, want %v", i, d.Points[i].Failed(), want)
		}
		if d.Points[i].Params != pts[i].Params {
			t.Errorf("point %d params %v, want %v", i, d.Points[i].Params, pts[i].Params)
		}
	}
	if d.Points[1].Error != "cannot open the device" || d.Points[1].Result != nil {
		t.Errorf("point 1: %+v", d.Points[1])
	}
	if d.Points[2].Result == nil || d.Points[2].Error == "" {
		t.Errorf("point 2 must keep its partial result and its error: %+v", d.Points[2])
	}
}

func TestRunInterruptedKeepsFinishedPoints(t *testing.T) {
	pts := Axes{QueueDepths: []int{1, 2, 4, 8}, QPairsPerNS: []int{1}, Workers: []int{1}, IOSizes: []int{4096},
		Patterns: []string{"randread"}}.Points()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var d report.SweepDocument
	Run(ctx, &d, pts, func(_ context.Context, i int, p Point) (*report.Document, error) {
		if i == 1 { // Ctrl-C during the second point: it reports what it measured
			cancel()
			r := doc(report.StatusInterrupted)
			r.Interrupted = true
			return r, nil
		}
		return doc(report.StatusOK), nil
	}, nil)
	if d.Status != report.SweepInterrupted || !d.Interrupted || len(d.Points) != 2 {
		t.Fatalf("status %q interrupted %v, %d points: want interrupted with 2", d.Status, d.Interrupted, len(d.Points))
	}
	if d.Points[0].Failed() || d.Points[1].Failed() {
		t.Errorf("finished points must stay valid: %+v", d.Points)
	}
}
