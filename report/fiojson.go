package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/workload"
)

// fio's JSON output (--output-format=json+ of fio 3.x), written so that fio's own tooling
// (fio_jsonplus_clat2csv, fio2gnuplot's JSON readers) and dashboards that parse fio JSON
// read nvmeperf results unchanged. One fio job per nvmeperf job (worker × target).
//
// Mapping (docs/fio-compat.md): nvmeperf measures submit-to-completion, which is fio's
// "lat"; submission is a function call, so "clat" carries the same histogram and "slat"
// is zero. The json+ "bins" are the HDR histogram's buckets keyed by each bucket's
// highest equivalent value in ns.

// FioVersionPrefix starts the "fio version" value, which names nvmeperf, not fio.
const FioVersionPrefix = "nvmeperf-"

// ProcessUsage is the CPU the benchmark process used during the run (getrusage), for
// fio's usr_cpu, sys_cpu, ctx, majf and minf.
type ProcessUsage struct {
	User, System    time.Duration
	ContextSwitches uint64 // voluntary + involuntary
	MajorFaults     uint64
	MinorFaults     uint64
}

// FioDocument is fio's JSON result layout.
type FioDocument struct {
	FioVersion    string            `json:"fio version"`
	Timestamp     int64             `json:"timestamp"`
	TimestampMS   int64             `json:"timestamp_ms"`
	Time          string            `json:"time"`
	GlobalOptions map[string]string `json:"global options"`
	Jobs          []FioJob          `json:"jobs"`
	DiskUtil      []any             `json:"disk_util"`
}

// FioJob is one entry of "jobs".
type FioJob struct {
	JobName         string             `json:"jobname"`
	GroupID         int                `json:"groupid"`
	Error           int                `json:"error"`
	Eta             int                `json:"eta"`
	Elapsed         int64              `json:"elapsed"` // seconds
	JobOptions      map[string]string  `json:"job options"`
	Read            FioDir             `json:"read"`
	Write           FioDir             `json:"write"`
	Trim            FioDir             `json:"trim"`
	Sync            FioSync            `json:"sync"`
	JobRuntime      int64              `json:"job_runtime"` // ms
	UsrCPU          float64            `json:"usr_cpu"`     // percent of the job's runtime
	SysCPU          float64            `json:"sys_cpu"`
	Ctx             uint64             `json:"ctx"`
	Majf            uint64             `json:"majf"`
	Minf            uint64             `json:"minf"`
	IODepthLevel    map[string]float64 `json:"iodepth_level"`
	IODepthSubmit   map[string]float64 `json:"iodepth_submit"`
	IODepthComplete map[string]float64 `json:"iodepth_complete"`
	LatencyNS       map[string]float64 `json:"latency_ns"`
	LatencyUS       map[string]float64 `json:"latency_us"`
	LatencyMS       map[string]float64 `json:"latency_ms"`
	LatencyDepth    int                `json:"latency_depth"`
	LatencyTarget   int                `json:"latency_target"`
	LatencyPct      float64            `json:"latency_percentile"`
	LatencyWindow   int                `json:"latency_window"`
}

// FioDir is one direction's numbers in fio's units: bw in KiB/s, runtime in ms.
type FioDir struct {
	IOBytes     uint64  `json:"io_bytes"`
	IOKBytes    uint64  `json:"io_kbytes"`
	BWBytes     uint64  `json:"bw_bytes"`
	BW          uint64  `json:"bw"`
	IOPS        float64 `json:"iops"`
	Runtime     int64   `json:"runtime"`
	TotalIOs    uint64  `json:"total_ios"`
	ShortIOs    uint64  `json:"short_ios"`
	DropIOs     uint64  `json:"drop_ios"`
	SlatNS      FioLat  `json:"slat_ns"`
	ClatNS      FioLat  `json:"clat_ns"`
	LatNS       FioLat  `json:"lat_ns"`
	BWMin       uint64  `json:"bw_min"`
	BWMax       uint64  `json:"bw_max"`
	BWAgg       float64 `json:"bw_agg"`
	BWMean      float64 `json:"bw_mean"`
	BWDev       float64 `json:"bw_dev"`
	BWSamples   int     `json:"bw_samples"`
	IOPSMin     uint64  `json:"iops_min"`
	IOPSMax     uint64  `json:"iops_max"`
	IOPSMean    float64 `json:"iops_mean"`
	IOPSStdDev  float64 `json:"iops_stddev"`
	IOPSSamples int     `json:"iops_samples"`
	Errors      uint64  `json:"nvmeperf_errors"` // I/Os that completed with an error (not a fio key)
}

// FioLat is a latency block; Percentile and Bins only in clat_ns, as fio writes them.
type FioLat struct {
	Min        int64             `json:"min"`
	Max        int64             `json:"max"`
	Mean       float64           `json:"mean"`
	StdDev     float64           `json:"stddev"`
	N          uint64            `json:"N"`
	Percentile Percentiles       `json:"percentile,omitempty"`
	Bins       map[string]uint64 `json:"bins,omitempty"`
}

// FioSync is fio's sync block; nvmeperf issues no syncs.
type FioSync struct {
	TotalIOs uint64 `json:"total_ios"`
	LatNS    FioLat `json:"lat_ns"`
}

// fio's latency bucket edges (stat.c): the value below which the bucket ends.
var fioLatEdges = []int64{2, 4, 10, 20, 50, 100, 250, 500, 750, 1000}

// BuildFio turns a run into fio's JSON layout. usage is the process's CPU use during
// the run; it is split evenly over the jobs, which fio reports per thread.
func BuildFio(meta Meta, res workload.Result, usage ProcessUsage) FioDocument {
	d := FioDocument{
		FioVersion:    FioVersionPrefix + meta.Version,
		Timestamp:     res.Start.Unix(),
		TimestampMS:   res.Start.UnixMilli(),
		Time:          res.Start.UTC().Format("Mon Jan _2 15:04:05 2006"),
		GlobalOptions: map[string]string{"ioengine": "nvmeperf"},
		Jobs:          make([]FioJob, 0, len(res.Jobs)),
		DiskUtil:      []any{},
	}
	runtimeMS := res.Duration.Milliseconds()
	n := float64(max(1, len(res.Jobs)))
	jobCPU := func(t time.Duration) float64 {
		if res.Duration <= 0 {
			return 0
		}
		return round3(t.Seconds() / n / res.Duration.Seconds() * 100)
	}
	c := meta.Config
	for _, j := range res.Jobs {
		s := sidesOf(j)
		name := fmt.Sprintf("%s core %d", j.Target.Name, j.Core)
		opts := map[string]string{
			"name":     name,
			"filename": targetLabelOf(j.Target),
			"rw":       c.Workload,
			"bs":       strconv.Itoa(c.IOSize),
			"iodepth":  strconv.Itoa(c.QueueDepth),
			"ioengine": "nvmeperf",
		}
		if c.Workload == "rw" || c.Workload == "randrw" {
			opts["rwmixread"] = strconv.Itoa(c.ReadPercent)
		}
		if c.Seconds > 0 {
			opts["runtime"] = strconv.FormatFloat(c.Seconds, 'f', -1, 64)
			opts["time_based"] = "1"
		}
		if j.Core >= 0 {
			opts["cpus_allowed"] = strconv.Itoa(j.Core)
		}
		fj := FioJob{
			JobName: name, GroupID: 0, Elapsed: int64(res.Duration.Round(time.Second).Seconds()), JobOptions: opts,
			Read:       fioDir(s.read, res.Duration),
			Write:      fioDir(s.write, res.Duration),
			Trim:       fioDir(side{hist: emptyHistogram()}, res.Duration),
			Sync:       FioSync{LatNS: FioLat{}},
			JobRuntime: runtimeMS,
			UsrCPU:     jobCPU(usage.User), SysCPU: jobCPU(usage.System),
			Ctx:  usage.ContextSwitches / uint64(n),
			Majf: usage.MajorFaults / uint64(n), Minf: usage.MinorFaults / uint64(n),
			IODepthLevel:    depthLevels(c.QueueDepth),
			IODepthSubmit:   depthSubmit(),
			IODepthComplete: depthSubmit(),
			LatencyDepth:    c.QueueDepth,
			LatencyPct:      100,
		}
		fj.LatencyNS, fj.LatencyUS, fj.LatencyMS = latencyBuckets(s.all)
		if j.Read.Errors+j.Write.Errors > 0 {
			fj.Error = 5 // EIO, as fio reports a job that saw I/O errors
		}
		d.Jobs = append(d.Jobs, fj)
	}
	return d
}

func fioDir(s side, dur time.Duration) FioDir {
	bw := uint64(0)
	if dur > 0 {
		bw = uint64(float64(s.bytes) / dur.Seconds())
	}
	lat := FioLat{N: s.ios}
	if s.ios > 0 {
		lat.Min, lat.Max = s.minNS(), s.maxNS()
		lat.Mean, lat.StdDev = round3(s.meanNS()), round3(s.stddevNS())
	}
	clat := lat
	if s.ios > 0 {
		clat.Percentile = make(Percentiles, 0, len(reportedPercentiles))
		for _, p := range reportedPercentiles {
			clat.Percentile = append(clat.Percentile, Percentile{Percent: p, Value: s.hist.ValueAtQuantile(p)})
		}
		clat.Bins = map[string]uint64{}
		for _, b := range s.hist.Distribution() {
			if b.Count > 0 {
				clat.Bins[strconv.FormatInt(b.To, 10)] += uint64(b.Count)
			}
		}
	}
	iops := perSecond(float64(s.ios), dur)
	return FioDir{
		IOBytes: s.bytes, IOKBytes: s.bytes >> 10, BWBytes: bw, BW: bw >> 10,
		IOPS: round3(iops), Runtime: dur.Milliseconds(), TotalIOs: s.ios + s.errors,
		SlatNS: FioLat{}, ClatNS: clat, LatNS: lat,
		BWMin: bw >> 10, BWMax: bw >> 10, BWAgg: 100, BWMean: float64(bw >> 10), BWSamples: 1,
		IOPSMin: uint64(iops), IOPSMax: uint64(iops), IOPSMean: round3(iops), IOPSSamples: 1,
		Errors: s.errors,
	}
}

// targetLabelOf is the trid or path the user named, else the target's name.
func targetLabelOf(t target.Info) string {
	if t.TRID != "" {
		return t.TRID
	}
	return t.Name
}

// depthLevels says the configured depth was kept full the whole run (the engine
// resubmits every completion at once), in fio's power-of-two buckets.
func depthLevels(depth int) map[string]float64 {
	m := map[string]float64{"1": 0, "2": 0, "4": 0, "8": 0, "16": 0, "32": 0, ">=64": 0}
	switch {
	case depth >= 64:
		m[">=64"] = 100
	case depth >= 32:
		m["32"] = 100
	case depth >= 16:
		m["16"] = 100
	case depth >= 8:
		m["8"] = 100
	case depth >= 4:
		m["4"] = 100
	case depth >= 2:
		m["2"] = 100
	default:
		m["1"] = 100
	}
	return m
}

func depthSubmit() map[string]float64 {
	return map[string]float64{"0": 0, "4": 100, "8": 0, "16": 0, "32": 0, "64": 0, ">=64": 0}
}

// latencyBuckets gives fio's latency_ns, latency_us and latency_ms: the percent of
// I/Os whose latency falls below each edge (and at or above the previous one).
func latencyBuckets(s side) (ns, us, ms map[string]float64) {
	ns, us, ms = map[string]float64{}, map[string]float64{}, map[string]float64{}
	for _, e := range fioLatEdges {
		k := strconv.FormatInt(e, 10)
		ns[k], us[k], ms[k] = 0, 0, 0
	}
	ms["2000"], ms[">=2000"] = 0, 0
	total := s.hist.TotalCount()
	if total == 0 {
		return
	}
	place := func(v int64) (map[string]float64, string) {
		for _, unit := range []struct {
			m   map[string]float64
			div int64
		}{{ns, 1}, {us, 1000}, {ms, 1_000_000}} {
			for _, e := range fioLatEdges {
				if v < e*unit.div {
					return unit.m, strconv.FormatInt(e, 10)
				}
			}
		}
		if v < 2000*1_000_000 {
			return ms, "2000"
		}
		return ms, ">=2000"
	}
	for _, b := range s.hist.Distribution() {
		if b.Count == 0 {
			continue
		}
		m, k := place(b.From)
		m[k] += float64(b.Count) * 100 / float64(total)
	}
	for _, m := range []map[string]float64{ns, us, ms} {
		for k, v := range m {
			m[k] = round3(v)
		}
	}
	return
}

// WriteFioJSON writes d indented as fio does, followed by a newline.
func WriteFioJSON(w io.Writer, d FioDocument) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return fmt.Errorf("report: encoding fio JSON: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}
