// Package report turns a run's workload.Result into SPDK perf's text layout
// (WriteText) and into a versioned JSON document for CI (Build, WriteJSON).
//
// Percentiles are always computed from histograms: per job from the merge of its read
// and write histograms, for the total from the merge of every job's histograms, never
// by averaging. The JSON carries each histogram in the HdrHistogram V2 compressed
// encoding so that results of several runs or machines merge exactly later on.
//
// The package never prints: it writes to the io.Writer it is given and returns errors.
package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/workload"
)

// Schema names the JSON document format. A consumer checks it before reading: a change
// that removes or renames a key or changes a unit bumps the version; added keys do not.
const Schema = "nvmeperf.result/v1"

// Statuses Build understands; a failure status carries the reason after ": ".
const (
	StatusOK            = "ok"
	StatusInterrupted   = "interrupted"
	StatusIOErrors      = "io_errors"
	StatusVerifyFailed  = "verify_failed" // verify mode found blocks that do not match
	StatusDeviceFailed  = "device_failed" // written as "device_failed: <why>"
	StatusError         = "error"         // written as "error: <why>"
	HistogramEncoding   = "hdrhistogram-v2-compressed-base64"
	timeLayoutRFC3339NS = "2006-01-02T15:04:05.000000000Z07:00"
)

// DefaultPercentiles are reported in every stats block unless Meta.Percentiles chooses
// others: fio's defaults, plus 99.999 and 99.9999 for the tail a drive's firmware shows.
var DefaultPercentiles = []float64{1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 99.9999}

// reportedPercentiles is fio's own default list, which the fio-format JSON keeps so that
// fio tooling sees what fio would write.
var reportedPercentiles = []float64{1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99}

// Config is what the run was asked to do, the document's "config" block.
type Config struct {
	Workload        string   `json:"workload"`     // read, write, randread, randwrite, rw, randrw
	ReadPercent     int      `json:"read_percent"` // share of reads in mixed workloads, 0-100
	QueueDepth      int      `json:"queue_depth"`  // requests in flight per queue pair
	IOSize          int      `json:"io_size"`      // bytes per I/O
	Seconds         float64  `json:"seconds"`      // measured time asked for
	WarmupSeconds   float64  `json:"warmup_seconds"`
	NumIOs          uint64   `json:"num_ios"` // stop after this many I/Os per job; 0 = time-bound
	CoreMask        string   `json:"core_mask"`
	Cores           []int    `json:"cores"`
	QPairsPerNS     int      `json:"qpairs_per_ns"`
	IOQueueSize     int      `json:"io_queue_size"`   // device queue entries; 0 = engine default
	MaxCompletions  int      `json:"max_completions"` // per poll; 0 = unlimited
	ZipfTheta       float64  `json:"zipf_theta"`      // 0 = uniform random offsets
	ContinueOnError bool     `json:"continue_on_error"`
	BufferAlign     int      `json:"buffer_align"` // bytes; 0 = page aligned
	Seed            uint64   `json:"seed"`
	Doorbell        string   `json:"doorbell"`   // per-poll, every-n, per-command
	DoorbellN       int      `json:"doorbell_n"` // N for every-n
	Verify          bool     `json:"verify"`
	Targets         []string `json:"targets"` // transport IDs or paths as given
	// Labels are free-form key/value pairs from the user (CI job, git revision, ...).
	Labels map[string]string `json:"labels,omitempty"`
	// StartAt and Barrier are --start-at and --barrier as given (runs across hosts).
	StartAt string `json:"start_at,omitempty"`
	Barrier string `json:"barrier,omitempty"`
}

// Meta is what the CLI knows about the run besides the measurements.
type Meta struct {
	Version     string
	CommandLine []string
	Host        Host
	Config      Config
	// Percentiles to report in every stats block; nil means DefaultPercentiles.
	Percentiles []float64
	// Recovery holds events, recovery counts and health snapshots (recovery.go).
	Recovery *Recovery
}

// Host describes the machine that ran the benchmark.
type Host struct {
	Hostname  string `json:"hostname"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	Kernel    string `json:"kernel"`
	CPUModel  string `json:"cpu_model"`
	NumCPU    int    `json:"num_cpu"`
	GoVersion string `json:"go_version"`
	// Where this process stood in a run across hosts (docs/distributed.md): rank 0 of
	// 1 for a run started by hand.
	Rank      int    `json:"rank"`
	WorldSize int    `json:"world_size"`
	Launcher  string `json:"launcher,omitempty"` // openmpi, pmix, mpich, slurm, kubernetes, flags
}

// Document is the JSON result document (schema nvmeperf.result/v1).
type Document struct {
	Schema          string   `json:"schema"`
	Version         string   `json:"nvmeperf_version"`
	CommandLine     []string `json:"command_line"`
	StartTime       string   `json:"start_time"`       // RFC 3339, nanoseconds, UTC
	DurationSeconds float64  `json:"duration_seconds"` // measured time, warm-up excluded
	Status          string   `json:"status"`
	Error           string   `json:"error,omitempty"` // why the run failed; absent when it did not
	Interrupted     bool     `json:"interrupted"`
	Host            Host     `json:"host"`
	Config          Config   `json:"config"`
	// HistogramFormat says how every "histogram" value is encoded and with which bounds,
	// so a consumer can merge histograms without reading this package.
	HistogramFormat HistogramFormat `json:"histogram_format"`
	Devices         []Device        `json:"devices"`
	Jobs            []JobReport     `json:"jobs"`
	// Workers is each worker thread's CPU over the measured phase, in worker order.
	Workers []WorkerReport `json:"workers"`
	Total   Total          `json:"total"`
	// Warnings are problems with the report itself (never with the device).
	Warnings []string `json:"warnings,omitempty"`

	// Repetitions (--repeat N): every repetition's totals with its histogram; the
	// document's jobs and total are then all repetitions merged, and RepetitionStats
	// holds the median and 95% confidence interval of each metric over them.
	Repetitions     []Repetition        `json:"repetitions,omitempty"`
	RepetitionStats map[string]Estimate `json:"repetition_stats,omitempty"`

	// Events, Recovery and Health (recovery.go): what the driver did to keep devices
	// going and the devices' SMART / Health view before and after the run.
	Events   []Event          `json:"events,omitempty"`
	Recovery []RecoveryCounts `json:"recovery,omitempty"`
	Health   []DeviceHealth   `json:"health,omitempty"`

	// Merge (nvmeperf merge): how the sources were combined, and the sources' own
	// documents unchanged.
	Merge   *MergeInfo `json:"merge,omitempty"`
	Sources []Document `json:"sources,omitempty"`
}

// HistogramFormat describes the encoded histograms.
type HistogramFormat struct {
	Encoding          string `json:"encoding"` // hdrhistogram-v2-compressed-base64
	Unit              string `json:"unit"`     // ns
	Lowest            int64  `json:"lowest"`
	Highest           int64  `json:"highest"`
	SignificantDigits int    `json:"significant_digits"`
}

// Device is one distinct target measured.
type Device struct {
	Name             string `json:"name"`
	TRID             string `json:"trid"`
	Transport        string `json:"transport"`
	Model            string `json:"model"`
	Serial           string `json:"serial"`
	Firmware         string `json:"firmware"`
	NSID             uint32 `json:"nsid"`
	LBASize          uint32 `json:"lba_size"`           // bytes
	CapacityBytes    uint64 `json:"capacity_bytes"`     // bytes
	MaxTransferBytes uint32 `json:"max_transfer_bytes"` // 0 = unlimited or unknown
	// Controller memory buffer (PCIe): its size, and whether the I/O SQs are in it.
	CMBBytes uint64 `json:"cmb_bytes,omitempty"`
	SQInCMB  bool   `json:"sq_in_cmb,omitempty"`
}

// JobReport is one worker's measurements for one device.
type JobReport struct {
	Device     int     `json:"device"`      // index into Document.Devices
	DeviceName string  `json:"device_name"` // Devices[Device].Name, for readers
	Core       int     `json:"core"`        // -1 when the worker was not pinned
	Worker     int     `json:"worker"`      // index into Document.Workers
	QPairs     int     `json:"qpairs"`
	Read       Stats   `json:"read"`
	Write      Stats   `json:"write"`
	All        Stats   `json:"all"` // read and write merged
	Verify     *Verify `json:"verify,omitempty"`
	// TransportStats are the job's queue pairs' transport counters (spdk_nvme_perf
	// --transport-stats); absent for targets that do not count them (kernel devices).
	TransportStats *TransportStats `json:"transport_stats,omitempty"`
}

// TransportStats are named as spdk_nvme_perf --transport-stats prints them for PCIe.
type TransportStats struct {
	Polls                 uint64 `json:"polls"`
	IdlePolls             uint64 `json:"idle_polls"`
	Completions           uint64 `json:"completions"`
	SubmittedRequests     uint64 `json:"submitted_requests"`
	SQMMIODoorbellUpdates uint64 `json:"sq_mmio_doorbell_updates"`
	CQMMIODoorbellUpdates uint64 `json:"cq_mmio_doorbell_updates"`
	QueuedRequests        uint64 `json:"queued_requests"`
	// Shadow doorbells: shadow updates, and doorbell register writes they made unneeded.
	SQShadowDoorbellUpdates uint64 `json:"sq_shadow_doorbell_updates"`
	CQShadowDoorbellUpdates uint64 `json:"cq_shadow_doorbell_updates"`
	ShadowDoorbellSkips     uint64 `json:"shadow_doorbell_skips"`
	// SQInCMB is how many of the job's queue pairs have their SQ in the controller
	// memory buffer.
	SQInCMB uint64 `json:"sq_in_cmb"`
}

// TransportStatsOf converts a job's counters; nil stays nil.
func TransportStatsOf(q *target.QueueStats) *TransportStats {
	if q == nil {
		return nil
	}
	return &TransportStats{Polls: q.Polls, IdlePolls: q.IdlePolls, Completions: q.Completions,
		SubmittedRequests: q.Submitted, SQMMIODoorbellUpdates: q.SQDoorbells,
		CQMMIODoorbellUpdates: q.CQDoorbells, QueuedRequests: q.Queued,
		SQShadowDoorbellUpdates: q.SQShadowUpdates, CQShadowDoorbellUpdates: q.CQShadowUpdates,
		ShadowDoorbellSkips: q.ShadowSkips, SQInCMB: q.SQInCMB}
}

// Total is every job merged.
type Total struct {
	Read   Stats   `json:"read"`
	Write  Stats   `json:"write"`
	All    Stats   `json:"all"`
	Verify *Verify `json:"verify,omitempty"`
	CPU    CPU     `json:"cpu"` // the workers' CPU summed
}

// WorkerReport is one worker thread: the jobs with its index ran on it.
type WorkerReport struct {
	Worker int    `json:"worker"` // its index, as in jobs[].worker
	Core   int    `json:"core"`   // -1 when not pinned
	IOs    uint64 `json:"ios"`    // I/Os it completed in the measured phase, errors included
	CPU    CPU    `json:"cpu"`
}

// CPU is CPU time used by worker threads in the measured phase (getrusage
// RUSAGE_THREAD), warm-up and set-up excluded. It is the tool's own cost: a simulated
// controller's device thread and kernel threads are not in it.
type CPU struct {
	UserSeconds   float64 `json:"user_seconds"`
	SystemSeconds float64 `json:"system_seconds"`
	NSPerIO       float64 `json:"ns_per_io"` // (user + system) / completed I/Os; 0 without I/Os
}

func cpuOf(c workload.WorkerCPU) CPU {
	return CPU{UserSeconds: round6(c.User.Seconds()), SystemSeconds: round6(c.System.Seconds()), NSPerIO: round3(c.NSPerIO())}
}

// Stats is one direction's numbers.
type Stats struct {
	IOs     uint64  `json:"ios"`    // completed successfully
	Bytes   uint64  `json:"bytes"`  // of successful I/Os
	IOPS    float64 `json:"iops"`   // ios / duration_seconds
	MiBps   float64 `json:"mibps"`  // bytes / 2^20 / duration_seconds
	Errors  uint64  `json:"errors"` // I/Os completed with an error
	Latency Latency `json:"latency_ns"`
	// Histogram is the latency histogram (ns) in HdrHistogram V2 compressed encoding,
	// base64: DecodeHistogram or any HdrHistogram library reads it.
	Histogram string `json:"histogram"`
}

// Latency summarizes a latency histogram in nanoseconds; all zeros when empty.
type Latency struct {
	Min         int64       `json:"min"`
	Max         int64       `json:"max"`
	Mean        float64     `json:"mean"`
	StdDev      float64     `json:"stddev"`
	Percentiles Percentiles `json:"percentiles"`
}

// Verify is what verify mode checked.
type Verify struct {
	Checked         uint64   `json:"checked"`
	Mismatched      uint64   `json:"mismatched"`
	Unwritten       uint64   `json:"unwritten"`
	FirstMismatches []string `json:"first_mismatches,omitempty"`
}

// Percentile is the latency (ns) at or below which Percent % of the I/Os completed.
type Percentile struct {
	Percent float64
	Value   int64
}

// Percentiles marshal as a JSON object keyed like fio ("99.900000"), in ascending
// order rather than Go's sorted-string map order, so documents read naturally.
type Percentiles []Percentile

// percentileKey formats a percent the way fio keys its percentiles.
func percentileKey(p float64) string { return strconv.FormatFloat(p, 'f', 6, 64) }

// MarshalJSON writes the percentiles as an object in ascending order.
func (ps Percentiles) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range ps {
		if math.IsNaN(p.Percent) || math.IsInf(p.Percent, 0) {
			return nil, fmt.Errorf("report: percentile %d: percent %v is not a finite number", i, p.Percent)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%d", percentileKey(p.Percent), p.Value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object of percent keys and sorts it ascending.
func (ps *Percentiles) UnmarshalJSON(data []byte) error {
	var m map[string]int64
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("report: percentiles: %w", err)
	}
	out := make(Percentiles, 0, len(m))
	for k, v := range m {
		p, err := strconv.ParseFloat(k, 64)
		if err != nil || p < 0 || p > 100 {
			return fmt.Errorf("report: percentiles: key %q is not a percent between 0 and 100", k)
		}
		out = append(out, Percentile{Percent: p, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Percent < out[j].Percent })
	*ps = out
	return nil
}

// At returns the value at percent p, if the document has it.
func (ps Percentiles) At(p float64) (int64, bool) {
	key := percentileKey(p)
	for _, x := range ps {
		if percentileKey(x.Percent) == key {
			return x.Value, true
		}
	}
	return 0, false
}

// Build makes the document for a run. It is deterministic given meta and res: the
// start time comes from res.Start and the host from meta.Host.
//
// status is "ok", "interrupted", "io_errors", "verify_failed", "device_failed: <why>"
// or "error: <why>"; an empty status is derived from res (Err, verify mismatches,
// Interrupted, error counts). A failed run still gives a complete document with what was measured, and
// "error" holds res.Err or the reason of a failure status.
func Build(meta Meta, res workload.Result, status string) Document {
	d := Document{
		Schema:          Schema,
		Version:         meta.Version,
		CommandLine:     nonNil(meta.CommandLine),
		StartTime:       res.Start.UTC().Format(timeLayoutRFC3339NS),
		DurationSeconds: finite(res.Duration.Seconds()),
		Interrupted:     res.Interrupted,
		Host:            meta.Host.normalized(),
		Config:          meta.Config,
		HistogramFormat: HistogramFormat{
			Encoding:          HistogramEncoding,
			Unit:              "ns",
			Lowest:            workload.LatencyLowest,
			Highest:           workload.LatencyHighest,
			SignificantDigits: workload.LatencySigFigs,
		},
		Devices: []Device{},
		Jobs:    make([]JobReport, 0, len(res.Jobs)),
		Workers: make([]WorkerReport, 0, len(res.Workers)),
	}
	for i, w := range res.Workers {
		d.Workers = append(d.Workers, WorkerReport{Worker: i, Core: w.Core, IOs: w.IOs, CPU: cpuOf(w)})
	}
	if r := meta.Recovery; r != nil { // recovery.go
		d.Events, d.Recovery, d.Health = r.Events, r.Counts, r.Health
	}
	d.Config.Cores = nonNil(d.Config.Cores)
	d.Config.Targets = nonNil(d.Config.Targets)

	deviceIndex := map[target.Info]int{}
	sides := make([]jobSides, len(res.Jobs))
	var totalVerify Verify
	anyVerify := meta.Config.Verify
	for i, j := range res.Jobs {
		idx, ok := deviceIndex[j.Target]
		if !ok {
			idx = len(d.Devices)
			deviceIndex[j.Target] = idx
			d.Devices = append(d.Devices, deviceOf(j.Target))
		}
		s := sidesOf(j)
		sides[i] = s
		where := fmt.Sprintf("job %d (%s, core %d)", i, j.Target.Name, j.Core)
		if s.dropped > 0 {
			d.Warnings = append(d.Warnings, droppedWarning(where, s.dropped))
		}
		jr := JobReport{
			Device:         idx,
			DeviceName:     j.Target.Name,
			Core:           j.Core,
			Worker:         j.Worker,
			QPairs:         j.QPairs,
			Read:           d.stats(where+" read", s.read, res.Duration, meta.Percentiles),
			Write:          d.stats(where+" write", s.write, res.Duration, meta.Percentiles),
			All:            d.stats(where+" all", s.all, res.Duration, meta.Percentiles),
			TransportStats: TransportStatsOf(j.Transport),
		}
		if v := j.Verify; meta.Config.Verify || v.Checked > 0 || v.Mismatched > 0 || v.Unwritten > 0 {
			anyVerify = true
			jr.Verify = &Verify{Checked: v.Checked, Mismatched: v.Mismatched, Unwritten: v.Unwritten,
				FirstMismatches: v.First}
			totalVerify.Checked += v.Checked
			totalVerify.Mismatched += v.Mismatched
			totalVerify.Unwritten += v.Unwritten
			totalVerify.FirstMismatches = append(totalVerify.FirstMismatches, v.First...)
		}
		d.Jobs = append(d.Jobs, jr)
	}

	r, w, a, dropped := totals(sides)
	if dropped > 0 {
		d.Warnings = append(d.Warnings, droppedWarning("total", dropped))
	}
	d.Total = Total{
		Read:  d.stats("total read", r, res.Duration, meta.Percentiles),
		Write: d.stats("total write", w, res.Duration, meta.Percentiles),
		All:   d.stats("total all", a, res.Duration, meta.Percentiles),
		CPU:   cpuOf(res.TotalCPU()),
	}
	if anyVerify {
		d.Total.Verify = &totalVerify
	}

	d.Status, d.Error = statusOf(status, meta, res)
	return d
}

// BuildVerdict is Build with the verdict Judge gave: status and error come from v, so
// the document says exactly what the process's exit status says.
func BuildVerdict(meta Meta, res workload.Result, v Verdict) Document {
	d := Build(meta, res, v.Status)
	d.Status, d.Error = v.Status, v.Error
	return d
}

// statusOf derives (with Judge) or normalizes the status and the error text.
func statusOf(status string, meta Meta, res workload.Result) (string, string) {
	if status == "" {
		f := Facts{Result: res}
		if meta.Config.Verify {
			f.Verify = workload.VerifyWriteCheck
		}
		v := Judge(f)
		return v.Status, v.Error
	}
	errText := ""
	if res.Err != nil {
		errText = res.Err.Error()
	}
	if errText == "" {
		for _, prefix := range []string{StatusDeviceFailed, StatusError} {
			if why, ok := strings.CutPrefix(status, prefix+": "); ok {
				errText = why
			} else if status == prefix {
				errText = prefix
			}
		}
	}
	return status, errText
}

func deviceOf(t target.Info) Device {
	return Device{
		Name:             t.Name,
		TRID:             t.TRID,
		Transport:        t.Transport,
		Model:            t.Model,
		Serial:           t.Serial,
		Firmware:         t.Firmware,
		NSID:             t.NSID,
		LBASize:          t.LBASize,
		CapacityBytes:    t.Capacity,
		MaxTransferBytes: t.MaxTransfer,
		CMBBytes:         t.CMB,
		SQInCMB:          t.SQInCMB,
	}
}

// stats fills one stats block; an encoding failure leaves the histogram empty and is
// recorded as a warning, since Build has no error to return.
func (d *Document) stats(where string, s side, dur time.Duration, percentiles []float64) Stats {
	enc, err := encodeHistogram(s.hist)
	if err != nil {
		d.Warnings = append(d.Warnings, fmt.Sprintf("%s: %v", where, err))
	}
	return Stats{
		IOs:       s.ios,
		Bytes:     s.bytes,
		IOPS:      round3(s.iops(dur)),
		MiBps:     round3(s.mibps(dur)),
		Errors:    s.errors,
		Latency:   latencyOf(s, percentiles),
		Histogram: enc,
	}
}

func latencyOf(s side, percentiles []float64) Latency {
	if percentiles == nil {
		percentiles = DefaultPercentiles
	}
	l := Latency{
		Min:         s.minNS(),
		Max:         s.maxNS(),
		Mean:        round3(s.meanNS()),
		StdDev:      round3(s.stddevNS()),
		Percentiles: make(Percentiles, len(percentiles)),
	}
	empty := s.hist.TotalCount() == 0
	for i, p := range percentiles {
		l.Percentiles[i].Percent = p
		if !empty {
			l.Percentiles[i].Value = s.hist.ValueAtPercentile(p)
		}
	}
	return l
}

func encodeHistogram(h *hdrhistogram.Histogram) (string, error) {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return "", fmt.Errorf("report: encode histogram: %w", err)
	}
	return string(b), nil
}

// DecodeHistogram reads a "histogram" value of a document back into a histogram.
func DecodeHistogram(b64 string) (*hdrhistogram.Histogram, error) {
	if b64 == "" {
		return nil, errors.New("report: decode histogram: empty string; want HdrHistogram V2 compressed base64")
	}
	h, err := hdrhistogram.Decode([]byte(b64))
	if err != nil {
		return nil, fmt.Errorf("report: decode histogram: %w", err)
	}
	return h, nil
}

// WriteJSON writes d as one indented JSON document followed by a newline.
func WriteJSON(w io.Writer, d Document) error { return writeIndented(w, d) }

func writeIndented(w io.Writer, d any) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("report: encode JSON: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("report: write JSON: %w", err)
	}
	return nil
}

// nonNil makes a nil slice an empty one so that JSON shows [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
