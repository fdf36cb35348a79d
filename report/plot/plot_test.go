package plot

import (
	"bytes"
	"encoding/xml"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/report/reporttest"
)

// svgTexts parses an SVG document and returns its text elements and the number of
// stroked paths (lines and markers).
func svgTexts(t *testing.T, data []byte) (texts []string, strokes int) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var root bool
	var in bool
	var cur strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not valid XML: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			switch e.Name.Local {
			case "svg":
				root = true
			case "text":
				in = true
				cur.Reset()
			case "path":
				for _, a := range e.Attr {
					if a.Name.Local == "style" && strings.Contains(a.Value, "stroke:") && !strings.Contains(a.Value, "stroke:none") {
						strokes++
					}
				}
			}
		case xml.CharData:
			if in {
				cur.Write(e)
			}
		case xml.EndElement:
			if e.Name.Local == "text" {
				in = false
				texts = append(texts, strings.TrimSpace(cur.String()))
			}
		}
	}
	if !root {
		t.Fatal("no <svg> element")
	}
	return texts, strokes
}

func sweepDoc() *report.SweepDocument {
	return reporttest.Sweep([]int{1, 2, 4, 8, 16, 32}, []int{1, 2}, reporttest.DefaultModel, 4)
}

func TestSweepSVGHasTheSeries(t *testing.T) {
	dir := t.TempDir()
	paths, err := WriteSweep(filepath.Join(dir, "plots"), "svg", sweepDoc())
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 || filepath.Base(paths[0]) != "iops.svg" || filepath.Base(paths[1]) != "latency.svg" {
		t.Fatalf("paths %v", paths)
	}
	for _, c := range []struct {
		path string
		want []string
	}{
		{paths[0], []string{"IOPS vs queue depth", "queue depth", "IOPS", "4k randread, qpairs=1", "4k randread, qpairs=2",
			"1", "2", "4", "8", "16", "32"}},
		{paths[1], []string{"Latency vs IOPS", "latency (µs)", "p50 4k randread, qpairs=1", "p99 4k randread, qpairs=1",
			"p99.9 4k randread, qpairs=1", "p50 4k randread, qpairs=2", "p99 4k randread, qpairs=2", "p99.9 4k randread, qpairs=2"}},
	} {
		data, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		texts, strokes := svgTexts(t, data)
		for _, w := range c.want {
			if !slices.Contains(texts, w) {
				t.Errorf("%s: no text %q among %q", filepath.Base(c.path), w, texts)
			}
		}
		if strokes < 4 {
			t.Errorf("%s: %d stroked paths: the lines are missing", filepath.Base(c.path), strokes)
		}
	}
}

func TestSweepPNG(t *testing.T) {
	paths, err := WriteSweep(t.TempDir(), "png", sweepDoc())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: not a PNG: %v", p, err)
		}
		b := img.Bounds()
		if b.Dx() < 400 || b.Dy() < 200 {
			t.Errorf("%s: %v is too small", p, b)
		}
		colors := map[[4]uint32]bool{}
		for y := b.Min.Y; y < b.Max.Y; y += 3 {
			for x := b.Min.X; x < b.Max.X; x += 3 {
				r, g, bl, a := img.At(x, y).RGBA()
				colors[[4]uint32{r, g, bl, a}] = true
			}
		}
		if len(colors) < 4 {
			t.Errorf("%s: %d colours: nothing was drawn", p, len(colors))
		}
	}
}

func TestRunPercentilesPlot(t *testing.T) {
	d := reporttest.Run(reporttest.Params(8, 1, 4096, "randrw", 70), reporttest.DefaultModel)
	paths, err := WriteRun(t.TempDir(), "svg", &d)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	texts, _ := svgTexts(t, data)
	for _, w := range []string{"Latency percentiles", "read", "write", "90%", "99%", "99.9%"} {
		if !slices.Contains(texts, w) {
			t.Errorf("no text %q among %q", w, texts)
		}
	}
	// A read-only run has no write line.
	r := reporttest.Run(reporttest.Params(8, 1, 4096, "randread", 100), reporttest.DefaultModel)
	p, err := RunPercentiles(&r)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Write(&b, p, "svg"); err != nil {
		t.Fatal(err)
	}
	if texts, _ := svgTexts(t, b.Bytes()); slices.Contains(texts, "write") || !slices.Contains(texts, "read") {
		t.Errorf("read-only run legend %q", texts)
	}
}

func TestPlotErrors(t *testing.T) {
	empty := &report.SweepDocument{Schema: report.SweepSchema, Points: []report.SweepPoint{{Error: "failed"}}}
	if _, err := WriteSweep(t.TempDir(), "svg", empty); err == nil {
		t.Error("a sweep without a successful point plotted")
	}
	if _, err := WriteSweep(t.TempDir(), "gif", sweepDoc()); err == nil || !strings.Contains(err.Error(), "svg or png") {
		t.Errorf("gif: %v", err)
	}
}

func TestPow2Ticks(t *testing.T) {
	var got []string
	for _, tk := range (Pow2Ticks{}).Ticks(1, 256) {
		got = append(got, tk.Label)
	}
	if strings.Join(got, ",") != "1,2,4,8,16,32,64,128,256" {
		t.Errorf("ticks %v", got)
	}
}
