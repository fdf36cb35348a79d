package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/workload"
)

// maxDocumentBytes bounds what Load reads: a sweep of a few hundred points with
// per-job histograms stays far below it, and a wrong file (a disk image) fails fast.
const maxDocumentBytes = 1 << 30

// Loaded is a saved document: exactly one of Run and Sweep is set.
type Loaded struct {
	Run   *Document
	Sweep *SweepDocument
}

// Kind names what was loaded ("run" or "sweep") for messages.
func (l *Loaded) Kind() string {
	if l.Sweep != nil {
		return "sweep"
	}
	return "run"
}

// LoadFile reads a run or sweep document from a file; errors name the file.
func LoadFile(path string) (*Loaded, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l, err := Load(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// Load reads one run (nvmeperf.result/v1) or sweep (nvmeperf.sweep/v1) document and
// checks what its consumers rely on: a known schema, histograms in the encoding and
// bounds this version writes, every histogram decodable, device indexes in range. It is
// the one loader compare, merge and report use; it never panics on any input.
func Load(r io.Reader) (*Loaded, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("report: read document: %w", err)
	}
	if len(data) > maxDocumentBytes {
		return nil, fmt.Errorf("report: document larger than %d bytes: not an nvmeperf result", maxDocumentBytes)
	}
	var head struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("report: not a JSON document: %w", err)
	}
	switch head.Schema {
	case Schema:
		var d Document
		if err := decodeStrict(data, &d); err != nil {
			return nil, err
		}
		if err := checkDocument(&d); err != nil {
			return nil, err
		}
		return &Loaded{Run: &d}, nil
	case SweepSchema:
		var s SweepDocument
		if err := decodeStrict(data, &s); err != nil {
			return nil, err
		}
		for i := range s.Points {
			p := &s.Points[i]
			if p.Result == nil {
				if p.Error == "" {
					return nil, fmt.Errorf("report: sweep point %d (%s): neither a result nor an error", i, p.Params)
				}
				continue
			}
			if p.Result.Schema != Schema {
				return nil, fmt.Errorf("report: sweep point %d (%s): result schema %q, want %q", i, p.Params, p.Result.Schema, Schema)
			}
			if err := checkDocument(p.Result); err != nil {
				return nil, fmt.Errorf("report: sweep point %d (%s): %w", i, p.Params, err)
			}
		}
		return &Loaded{Sweep: &s}, nil
	case "":
		return nil, fmt.Errorf("report: document has no \"schema\" key: not an nvmeperf result (want %q or %q)", Schema, SweepSchema)
	default:
		return nil, fmt.Errorf("report: schema %q is not one this version reads (want %q or %q)", head.Schema, Schema, SweepSchema)
	}
}

// decodeStrict decodes one JSON value and refuses trailing data. Unknown keys are
// accepted: later v1 documents only add keys.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("report: decode document: %w", err)
	}
	if dec.More() {
		return errors.New("report: decode document: data after the document")
	}
	return nil
}

func checkDocument(d *Document) error {
	hf := d.HistogramFormat
	if hf.Encoding != HistogramEncoding || hf.Unit != "ns" {
		return fmt.Errorf("report: histogram_format %s/%s, want %s/ns", hf.Encoding, hf.Unit, HistogramEncoding)
	}
	if hf.Lowest != workload.LatencyLowest || hf.Highest != workload.LatencyHighest || hf.SignificantDigits != workload.LatencySigFigs {
		return fmt.Errorf("report: histogram bounds %d..%d ns with %d digits, want %d..%d with %d: histograms would not merge exactly",
			hf.Lowest, hf.Highest, hf.SignificantDigits, workload.LatencyLowest, workload.LatencyHighest, workload.LatencySigFigs)
	}
	if d.DurationSeconds < 0 || math.IsNaN(d.DurationSeconds) || d.DurationSeconds > 1e9 {
		return fmt.Errorf("report: duration_seconds %v: want a non-negative number of seconds", d.DurationSeconds)
	}
	if d.StartTime != "" {
		if _, err := time.Parse(time.RFC3339Nano, d.StartTime); err != nil {
			return fmt.Errorf("report: start_time %q: want RFC 3339", d.StartTime)
		}
	}
	for i, j := range d.Jobs {
		if j.Device < 0 || j.Device >= len(d.Devices) {
			return fmt.Errorf("report: jobs[%d].device %d: want an index into devices (%d of them)", i, j.Device, len(d.Devices))
		}
		for _, s := range []struct {
			name string
			st   Stats
		}{{"read", j.Read}, {"write", j.Write}, {"all", j.All}} {
			if _, err := s.st.histogram(); err != nil {
				return fmt.Errorf("report: jobs[%d].%s: %w", i, s.name, err)
			}
		}
	}
	for _, s := range []struct {
		name string
		st   Stats
	}{{"read", d.Total.Read}, {"write", d.Total.Write}, {"all", d.Total.All}} {
		if _, err := s.st.histogram(); err != nil {
			return fmt.Errorf("report: total.%s: %w", s.name, err)
		}
	}
	for i, r := range d.Repetitions {
		if _, err := r.All.histogram(); err != nil {
			return fmt.Errorf("report: repetitions[%d]: %w", i, err)
		}
	}
	for i := range d.Sources {
		if err := checkDocument(&d.Sources[i]); err != nil {
			return fmt.Errorf("report: sources[%d]: %w", i, err)
		}
	}
	return nil
}

// histogram decodes the block's histogram; an empty string (a document of a run that
// failed before measuring) is an empty histogram. Decoding is guarded: a corrupt
// histogram is an error, never a panic.
func (s Stats) histogram() (h *hdrhistogram.Histogram, err error) {
	if s.Histogram == "" {
		return workload.NewLatencyHistogram(), nil
	}
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, fmt.Errorf("report: decode histogram: corrupt data (%v)", r)
		}
	}()
	h, err = DecodeHistogram(s.Histogram)
	if err != nil {
		return nil, err
	}
	if h.LowestTrackableValue() != workload.LatencyLowest || h.HighestTrackableValue() != workload.LatencyHighest ||
		h.SignificantFigures() != workload.LatencySigFigs {
		return nil, fmt.Errorf("report: histogram bounds %d..%d/%d differ from histogram_format",
			h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures())
	}
	return h, nil
}

// Result rebuilds the workload.Result a document was made from, histograms included,
// so the text reporter can render a saved run exactly as it rendered the live one.
func (d *Document) Result() (workload.Result, error) {
	res := workload.Result{
		Duration:    time.Duration(d.DurationSeconds * float64(time.Second)),
		Interrupted: d.Interrupted,
	}
	if t, err := time.Parse(time.RFC3339Nano, d.StartTime); err == nil {
		res.Start = t
	}
	if d.Error != "" && !judgedOnly(d.Status, d.Error) {
		res.Err = errors.New(d.Error)
	}
	for i, j := range d.Jobs {
		if j.Device < 0 || j.Device >= len(d.Devices) {
			return res, fmt.Errorf("report: jobs[%d].device %d out of range", i, j.Device)
		}
		dev := d.Devices[j.Device]
		job := workload.Job{
			Target: target.Info{Name: dev.Name, TRID: dev.TRID, Transport: dev.Transport, Model: dev.Model,
				Serial: dev.Serial, Firmware: dev.Firmware, NSID: dev.NSID, LBASize: dev.LBASize,
				Capacity: dev.CapacityBytes, MaxTransfer: dev.MaxTransferBytes, CMB: dev.CMBBytes, SQInCMB: dev.SQInCMB},
			Core:   j.Core,
			QPairs: j.QPairs,
		}
		var err error
		if job.Read, err = j.Read.side(); err != nil {
			return res, fmt.Errorf("report: jobs[%d].read: %w", i, err)
		}
		if job.Write, err = j.Write.side(); err != nil {
			return res, fmt.Errorf("report: jobs[%d].write: %w", i, err)
		}
		if v := j.Verify; v != nil {
			job.Verify = workload.VerifyStats{Checked: v.Checked, Mismatched: v.Mismatched, Unwritten: v.Unwritten, First: v.FirstMismatches}
		}
		job.Worker = j.Worker
		res.Jobs = append(res.Jobs, job)
	}
	for _, w := range d.Workers {
		res.Workers = append(res.Workers, workload.WorkerCPU{
			Core: w.Core, IOs: w.IOs,
			User:   time.Duration(w.CPU.UserSeconds * float64(time.Second)),
			System: time.Duration(w.CPU.SystemSeconds * float64(time.Second)),
		})
	}
	return res, nil
}

func (s Stats) side() (workload.Side, error) {
	h, err := s.histogram()
	if err != nil {
		return workload.Side{}, err
	}
	return workload.Side{IOs: s.IOs, Bytes: s.Bytes, Errors: s.Errors, Latency: h}, nil
}

// PercentilesOf returns the percents a document reports, so that re-rendering or
// merging keeps the set its producer chose.
func PercentilesOf(d *Document) []float64 {
	var ps []float64
	for _, p := range d.Total.All.Latency.Percentiles {
		ps = append(ps, p.Percent)
	}
	if len(ps) == 0 {
		return DefaultPercentiles
	}
	return ps
}

// Recompute sets every stats block's percentiles to percents, computed from the stored
// histograms (nil keeps the document's own set, recomputed).
func Recompute(d *Document, percents []float64) error {
	if percents == nil {
		percents = PercentilesOf(d)
	}
	fix := func(s *Stats) error {
		h, err := s.histogram()
		if err != nil {
			return err
		}
		s.Latency = latencyOf(side{hist: h}, percents)
		return nil
	}
	for i := range d.Jobs {
		for _, s := range []*Stats{&d.Jobs[i].Read, &d.Jobs[i].Write, &d.Jobs[i].All} {
			if err := fix(s); err != nil {
				return fmt.Errorf("report: jobs[%d]: %w", i, err)
			}
		}
	}
	for _, s := range []*Stats{&d.Total.Read, &d.Total.Write, &d.Total.All} {
		if err := fix(s); err != nil {
			return fmt.Errorf("report: total: %w", err)
		}
	}
	for i := range d.Repetitions {
		if err := fix(&d.Repetitions[i].All); err != nil {
			return fmt.Errorf("report: repetitions[%d]: %w", i, err)
		}
	}
	return nil
}
