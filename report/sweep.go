package report

import (
	"fmt"
	"io"
)

// SweepSchema names the sweep document format (nvmeperf sweep --output-format json).
// Like Schema, it only gains keys within v1.
const SweepSchema = "nvmeperf.sweep/v1"

// Sweep statuses.
const (
	SweepOK           = "ok"            // every point ran and reported status ok
	SweepFailedPoints = "failed_points" // at least one point failed; the others are valid
	SweepInterrupted  = "interrupted"   // stopped early; the finished points are valid
)

// SweepDocument is the JSON document of a sweep: what was varied and one complete result
// document per point.
type SweepDocument struct {
	Schema      string       `json:"schema"`
	Version     string       `json:"nvmeperf_version"`
	CommandLine []string     `json:"command_line"`
	StartTime   string       `json:"start_time"` // RFC 3339, UTC
	Status      string       `json:"status"`
	Interrupted bool         `json:"interrupted"`
	Host        Host         `json:"host"`
	Config      SweepConfig  `json:"config"`
	Points      []SweepPoint `json:"points"`
}

// SweepConfig lists the values each swept parameter takes; the points are their
// cartesian product, queue depth varying fastest, then qpairs per namespace, workers,
// I/O size, pattern and read percentage.
type SweepConfig struct {
	QueueDepths  []int    `json:"queue_depths"`
	QPairsPerNS  []int    `json:"qpairs_per_ns"`
	Workers      []int    `json:"workers"`
	IOSizes      []int    `json:"io_sizes"`
	Patterns     []string `json:"patterns"`
	ReadPercents []int    `json:"read_percents"`
	Repeat       int      `json:"repeat"` // runs per point
	// Labels are the --label pairs given to the sweep.
	Labels map[string]string `json:"labels,omitempty"`
}

// SweepParams are one point's coordinates. QPairs counts queue pairs per namespace over
// all workers (workers × -P).
type SweepParams struct {
	QueueDepth  int    `json:"queue_depth"`
	QPairs      int    `json:"qpairs"`
	Workers     int    `json:"workers"`
	IOSize      int    `json:"io_size"`
	Pattern     string `json:"pattern"`
	ReadPercent int    `json:"read_percent"`
}

// String is a compact, stable label for the point, used in tables and verdicts.
func (p SweepParams) String() string {
	s := fmt.Sprintf("q=%d qpairs=%d workers=%d o=%d w=%s", p.QueueDepth, p.QPairs, p.Workers, p.IOSize, p.Pattern)
	if p.Pattern == "rw" || p.Pattern == "randrw" {
		s += fmt.Sprintf(" M=%d", p.ReadPercent)
	}
	return s
}

// SweepPoint is one point: its parameters and either a result or why it has none. A
// point whose run started but failed has both: Error and the partial Result.
type SweepPoint struct {
	Params SweepParams `json:"params"`
	Error  string      `json:"error,omitempty"`
	Result *Document   `json:"result,omitempty"`
}

// Failed reports whether the point has no usable result.
func (p SweepPoint) Failed() bool {
	return p.Result == nil || p.Error != "" || (p.Result.Status != StatusOK && p.Result.Status != StatusInterrupted)
}

// ParamsOf derives a point's parameters from a run document, so a single run can be
// matched against a sweep point or shown in the same tables.
func ParamsOf(d *Document) SweepParams {
	c := d.Config
	workers := max(1, len(c.Cores))
	qp := max(1, c.QPairsPerNS)
	return SweepParams{
		QueueDepth: c.QueueDepth, QPairs: workers * qp, Workers: workers,
		IOSize: c.IOSize, Pattern: c.Workload, ReadPercent: c.ReadPercent,
	}
}

// WriteSweepJSON writes d as one indented JSON document followed by a newline.
func WriteSweepJSON(w io.Writer, d *SweepDocument) error {
	return writeIndented(w, d)
}
