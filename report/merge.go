package report

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"golang.org/x/perf/benchmath"
)

// Repetition is one run of a repeated run (--repeat): its totals, histograms included.
type Repetition struct {
	StartTime       string  `json:"start_time"`
	DurationSeconds float64 `json:"duration_seconds"`
	Status          string  `json:"status"`
	Read            Stats   `json:"read"`
	Write           Stats   `json:"write"`
	All             Stats   `json:"all"`
}

// MergeInfo says how nvmeperf merge combined its sources.
type MergeInfo struct {
	Sources int `json:"sources"`
	// CommonStart and CommonSeconds are the window every source was measuring in; the
	// document's start_time and duration_seconds are this window.
	CommonStart   string  `json:"common_start"`
	CommonSeconds float64 `json:"common_seconds"`
	// Rates says how IOPS and MiB/s of the total were formed.
	Rates string `json:"rates"`
	// Forced lists the differences --force let through.
	Forced []string `json:"forced,omitempty"`
	// StartSkewSeconds is the latest source start minus the earliest: how well the
	// sources (ranks) started together.
	StartSkewSeconds float64 `json:"start_skew_seconds"`
	// WorldSize and Ranks are set when the sources are ranks of one run across hosts
	// (host.world_size > 1): every rank 0..WorldSize-1 once; sources are in rank order.
	WorldSize int   `json:"world_size,omitempty"`
	Ranks     []int `json:"ranks,omitempty"`
}

// checkRanks orders the sources of a run across hosts by rank and says what is wrong
// with the set: ranks missing, twice, or from worlds of different sizes. Sources that
// carry no ranks (world size 1) are left as given.
func checkRanks(docs []Document) (world int, ranks []int, problems []string) {
	distributed := false
	for _, d := range docs {
		if d.Host.WorldSize > 1 {
			distributed = true
		}
	}
	if !distributed {
		return 0, nil, nil
	}
	world = docs[0].Host.WorldSize
	seen := map[int]int{}
	for i, d := range docs {
		if d.Host.WorldSize != world {
			problems = append(problems, fmt.Sprintf("source %d (rank %d) is from a world of %d ranks, source 0 from %d", i, d.Host.Rank, d.Host.WorldSize, world))
		}
		seen[d.Host.Rank]++
	}
	var missing, twice []string
	for r := 0; r < world; r++ {
		switch n := seen[r]; {
		case n == 0:
			missing = append(missing, fmt.Sprint(r))
		case n > 1:
			twice = append(twice, fmt.Sprint(r))
		}
	}
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("ranks %s of 0..%d are missing", strings.Join(missing, ", "), world-1))
	}
	if len(twice) > 0 {
		problems = append(problems, fmt.Sprintf("ranks %s are given more than once", strings.Join(twice, ", ")))
	}
	slices.SortStableFunc(docs, func(a, b Document) int { return a.Host.Rank - b.Host.Rank })
	for _, d := range docs {
		ranks = append(ranks, d.Host.Rank)
	}
	return world, ranks, problems
}

// Differences lists what makes two runs measure different things: the workload
// parameters and the device models. An empty list means they are comparable (seed,
// duration, labels and host may differ).
func Differences(a, b *Document) []string {
	var d []string
	ca, cb := a.Config, b.Config
	diff := func(name string, x, y any) {
		if fmt.Sprint(x) != fmt.Sprint(y) {
			d = append(d, fmt.Sprintf("%s %v vs %v", name, x, y))
		}
	}
	diff("workload", ca.Workload, cb.Workload)
	if ca.Workload == "rw" || ca.Workload == "randrw" || ca.Workload != cb.Workload {
		diff("read_percent", ca.ReadPercent, cb.ReadPercent)
	}
	diff("io_size", ca.IOSize, cb.IOSize)
	diff("queue_depth", ca.QueueDepth, cb.QueueDepth)
	diff("qpairs_per_ns", max(1, ca.QPairsPerNS), max(1, cb.QPairsPerNS))
	diff("workers", max(1, len(ca.Cores)), max(1, len(cb.Cores)))
	diff("zipf_theta", ca.ZipfTheta, cb.ZipfTheta)
	diff("verify", ca.Verify, cb.Verify)
	diff("device models", models(a), models(b))
	return d
}

func models(d *Document) string {
	var m []string
	for _, dev := range d.Devices {
		m = append(m, dev.Model)
	}
	return "[" + strings.Join(m, ", ") + "]"
}

// mergeBlocks merges stats blocks exactly (counters summed, histograms merged) and
// computes rates over dur.
func mergeBlocks(blocks []Stats, dur time.Duration, percents []float64) (Stats, []string, error) {
	m := newMerger()
	for _, b := range blocks {
		h, err := b.histogram()
		if err != nil {
			return Stats{}, nil, err
		}
		m.add(side{ios: b.IOs, bytes: b.Bytes, errors: b.Errors, hist: h})
	}
	var d Document
	s := d.stats("merged", m.side, dur, percents)
	if m.dropped > 0 {
		d.Warnings = append(d.Warnings, droppedWarning("merged", m.dropped))
	}
	return s, d.Warnings, nil
}

type jobKey struct {
	device      string
	core, pairs int
}

// MergeRepetitions combines the documents of one run repeated: jobs and total hold
// every repetition merged (rates over the summed measured time), Repetitions each
// one's totals, RepetitionStats the median and 95% CI of each metric.
func MergeRepetitions(reps []Document) (Document, error) {
	if len(reps) == 0 {
		return Document{}, errors.New("report: merge repetitions: no documents")
	}
	percents := PercentilesOf(&reps[0])
	out := reps[0]
	out.Jobs = nil
	out.Workers = sumWorkers(reps)
	out.Warnings = slices.Clone(out.Warnings)
	var dur time.Duration
	for _, r := range reps {
		dur += time.Duration(r.DurationSeconds * float64(time.Second))
	}
	out.DurationSeconds = finite(dur.Seconds())

	// Jobs are matched by device, core and queue pairs; a job missing from a
	// repetition (one that failed early) simply contributes nothing there.
	var order []jobKey
	byKey := map[jobKey][]JobReport{}
	for _, r := range reps {
		for _, j := range r.Jobs {
			k := jobKey{j.DeviceName, j.Core, j.QPairs}
			if _, ok := byKey[k]; !ok {
				order = append(order, k)
			}
			byKey[k] = append(byKey[k], j)
		}
	}
	for _, k := range order {
		js := byKey[k]
		j := js[0]
		var err error
		var warns []string
		for _, dir := range []struct {
			dst *Stats
			get func(JobReport) Stats
		}{
			{&j.Read, func(x JobReport) Stats { return x.Read }},
			{&j.Write, func(x JobReport) Stats { return x.Write }},
			{&j.All, func(x JobReport) Stats { return x.All }},
		} {
			var blocks []Stats
			for _, x := range js {
				blocks = append(blocks, dir.get(x))
			}
			if *dir.dst, warns, err = mergeBlocks(blocks, dur, percents); err != nil {
				return Document{}, err
			}
			out.Warnings = append(out.Warnings, warns...)
		}
		j.Verify = mergeVerify(js)
		out.Jobs = append(out.Jobs, j)
	}
	if err := mergeTotals(&out, reps, dur, percents); err != nil {
		return Document{}, err
	}

	out.Repetitions = nil
	for _, r := range reps {
		out.Repetitions = append(out.Repetitions, Repetition{
			StartTime: r.StartTime, DurationSeconds: r.DurationSeconds, Status: r.Status,
			Read: r.Total.Read, Write: r.Total.Write, All: r.Total.All,
		})
		if out.Status == StatusOK && r.Status != StatusOK {
			out.Status, out.Error = r.Status, r.Error
		}
		out.Interrupted = out.Interrupted || r.Interrupted
	}
	stats, err := RepetitionEstimates(out.Repetitions)
	if err != nil {
		return Document{}, err
	}
	out.RepetitionStats = stats
	return out, nil
}

// RepetitionEstimates is the median and 95% confidence interval of every metric over
// the repetitions (percentiles recomputed from each repetition's histogram).
func RepetitionEstimates(reps []Repetition) (map[string]Estimate, error) {
	samples, err := RepetitionSamples(reps)
	if err != nil {
		return nil, err
	}
	out := map[string]Estimate{}
	for name, xs := range samples {
		s := benchmath.NewSample(xs, &benchmath.DefaultThresholds)
		sum := benchmath.AssumeNothing.Summary(s, 0.95)
		out[name] = Estimate{Median: finite(sum.Center), Low: finitePtr(sum.Lo), High: finitePtr(sum.Hi),
			Confidence: finite(sum.Confidence), N: len(xs)}
	}
	return out, nil
}

// RepetitionSamples returns each metric's values over the repetitions.
func RepetitionSamples(reps []Repetition) (map[string][]float64, error) {
	out := map[string][]float64{}
	for i, r := range reps {
		m, err := MetricsOf(r.All)
		if err != nil {
			return nil, fmt.Errorf("report: repetitions[%d]: %w", i, err)
		}
		for _, name := range MetricNames {
			out[name] = append(out[name], m[name])
		}
	}
	return out, nil
}

func mergeVerify(js []JobReport) *Verify {
	var v *Verify
	for _, j := range js {
		if j.Verify == nil {
			continue
		}
		if v == nil {
			v = &Verify{}
		}
		v.Checked += j.Verify.Checked
		v.Mismatched += j.Verify.Mismatched
		v.Unwritten += j.Verify.Unwritten
		v.FirstMismatches = append(v.FirstMismatches, j.Verify.FirstMismatches...)
	}
	return v
}

// mergeTotals sets out.Total to the exact merge of the documents' totals with rates
// over dur.
func mergeTotals(out *Document, docs []Document, dur time.Duration, percents []float64) error {
	var r, w, a []Stats
	var verify []JobReport
	for _, d := range docs {
		r, w, a = append(r, d.Total.Read), append(w, d.Total.Write), append(a, d.Total.All)
		verify = append(verify, JobReport{Verify: d.Total.Verify})
	}
	var err error
	var warns []string
	for _, x := range []struct {
		dst    *Stats
		blocks []Stats
	}{{&out.Total.Read, r}, {&out.Total.Write, w}, {&out.Total.All, a}} {
		if *x.dst, warns, err = mergeBlocks(x.blocks, dur, percents); err != nil {
			return err
		}
		out.Warnings = append(out.Warnings, warns...)
	}
	out.Total.Verify = mergeVerify(verify)
	out.Total.CPU = sumCPU(docs)
	return nil
}

// sumCPU adds the worker threads' CPU of every document: CPU seconds and I/Os add up,
// so the merged nanoseconds per I/O is the cost over all of them.
func sumCPU(docs []Document) CPU {
	var user, sys float64
	var ios uint64
	for _, d := range docs {
		user += d.Total.CPU.UserSeconds
		sys += d.Total.CPU.SystemSeconds
		for _, w := range d.Workers {
			ios += w.IOs
		}
	}
	c := CPU{UserSeconds: round6(user), SystemSeconds: round6(sys)}
	if ios > 0 {
		c.NSPerIO = round3((user + sys) * 1e9 / float64(ios))
	}
	return c
}

// MergeConcurrent combines runs of one configuration taken at the same time (several
// hosts or processes against one device or fabric) into one document: histograms
// merged exactly, jobs of every source kept (device indexes remapped), and the total's
// IOPS and MiB/s the sum of the sources' rates, which is the rate over the window they
// share when each source ran steadily. The sources are kept unchanged in Sources.
// Sources whose configurations differ, or whose measured windows do not overlap, are
// refused unless force is set; the differences forced through are recorded.
func MergeConcurrent(docs []Document, force bool) (Document, error) {
	if len(docs) < 2 {
		return Document{}, errors.New("report: merge: want at least two documents")
	}
	docs = slices.Clone(docs)
	var forced []string
	world, ranks, problems := checkRanks(docs)
	if len(problems) > 0 {
		msg := "not one whole run across hosts: " + strings.Join(problems, "; ")
		if !force {
			return Document{}, &IncomparableError{msg}
		}
		forced = append(forced, msg)
	}
	for i := 1; i < len(docs); i++ {
		if d := Differences(&docs[0], &docs[i]); len(d) > 0 {
			msg := fmt.Sprintf("source %d differs from source 0: %s", i, strings.Join(d, "; "))
			if !force {
				return Document{}, &IncomparableError{msg}
			}
			forced = append(forced, msg)
		}
	}
	var start, end, first time.Time
	for i, d := range docs {
		s, err := time.Parse(time.RFC3339Nano, d.StartTime)
		if err != nil {
			return Document{}, fmt.Errorf("report: merge: source %d: start_time %q: %w", i, d.StartTime, err)
		}
		e := s.Add(time.Duration(d.DurationSeconds * float64(time.Second)))
		if i == 0 || s.After(start) {
			start = s
		}
		if i == 0 || s.Before(first) {
			first = s
		}
		if i == 0 || e.Before(end) {
			end = e
		}
	}
	if !end.After(start) {
		msg := fmt.Sprintf("the sources' measured windows do not overlap (latest start %s, earliest end %s): they were not taken at the same time",
			start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
		if !force {
			return Document{}, &IncomparableError{msg}
		}
		forced = append(forced, msg)
		end = start
	}
	window := end.Sub(start)
	percents := PercentilesOf(&docs[0])

	out := docs[0]
	out.Repetitions, out.RepetitionStats = nil, nil
	out.Warnings = slices.Clone(out.Warnings)
	out.StartTime = start.UTC().Format(timeLayoutRFC3339NS)
	out.DurationSeconds = finite(window.Seconds())
	out.Devices, out.Jobs = nil, nil
	devIndex := map[Device]int{}
	out.Workers = nil
	for _, d := range docs {
		// Every source's workers are kept; jobs point at them in the merged list.
		firstWorker := len(out.Workers)
		for _, w := range d.Workers {
			w.Worker += firstWorker
			out.Workers = append(out.Workers, w)
		}
		for _, j := range d.Jobs {
			dev := d.Devices[j.Device]
			idx, ok := devIndex[dev]
			if !ok {
				idx = len(out.Devices)
				devIndex[dev] = idx
				out.Devices = append(out.Devices, dev)
			}
			j.Device = idx
			j.Worker += firstWorker
			out.Jobs = append(out.Jobs, j)
		}
		if out.Status == StatusOK && d.Status != StatusOK {
			out.Status, out.Error = d.Status, d.Error
		}
		out.Interrupted = out.Interrupted || d.Interrupted
	}
	out.Devices = nonNil(out.Devices)
	out.Jobs = nonNil(out.Jobs)
	if err := mergeTotals(&out, docs, window, percents); err != nil {
		return Document{}, err
	}
	for _, x := range []struct {
		dst *Stats
		get func(Total) Stats
	}{
		{&out.Total.Read, func(t Total) Stats { return t.Read }},
		{&out.Total.Write, func(t Total) Stats { return t.Write }},
		{&out.Total.All, func(t Total) Stats { return t.All }},
	} {
		var iops, mibps float64
		for _, d := range docs {
			iops += x.get(d.Total).IOPS
			mibps += x.get(d.Total).MiBps
		}
		x.dst.IOPS, x.dst.MiBps = round3(iops), round3(mibps)
	}
	out.Merge = &MergeInfo{
		Sources: len(docs), CommonStart: out.StartTime, CommonSeconds: out.DurationSeconds,
		Rates:            "sum of the sources' rates",
		Forced:           forced,
		StartSkewSeconds: finite(start.Sub(first).Seconds()),
		WorldSize:        world, Ranks: ranks,
	}
	out.Sources = slices.Clone(docs)
	return out, nil
}

// IncomparableError says why documents cannot be compared or merged.
type IncomparableError struct{ Why string }

func (e *IncomparableError) Error() string { return "report: not comparable: " + e.Why }

// WriteRepetitionsText writes each repetition's main numbers and every metric's median
// with its 95% confidence interval.
func WriteRepetitionsText(w io.Writer, d *Document) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s %12s %10s %12s %12s %12s %8s  %s\n", "Repetition", "IOPS", "MiB/s", "mean(us)", "p50(us)", "p99(us)", "errors", "status")
	for i, r := range d.Repetitions {
		m, err := MetricsOf(r.All)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%-12d %12.2f %10.2f %12.2f %12.2f %12.2f %8.0f  %s\n", i+1, m["iops"], m["mibps"],
			m["mean"]/1e3, m["p50"]/1e3, m["p99"]/1e3, m["errors"], r.Status)
	}
	b.WriteString("\nMedian and 95% confidence interval over the repetitions:\n")
	for _, name := range MetricNames {
		e, ok := d.RepetitionStats[name]
		if !ok {
			continue
		}
		scale, unit := 1.0, ""
		if _, lat := metricPercents[name]; lat || name == "mean" {
			scale, unit = 1e3, " us"
		}
		ci := fmt.Sprintf("no interval: %d repetitions are too few for 95%% (6 are needed)", e.N)
		if e.Low != nil && e.High != nil {
			ci = fmt.Sprintf("[%.2f, %.2f]%s", *e.Low/scale, *e.High/scale, unit)
		}
		fmt.Fprintf(&b, "  %-8s %12.2f%s  %s\n", name, e.Median/scale, unit, ci)
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: write text: %w", err)
	}
	return nil
}

// sumWorkers adds up each worker's CPU and I/Os over the repetitions of one run (the
// same workers each time, matched by index).
func sumWorkers(reps []Document) []WorkerReport {
	var out []WorkerReport
	for _, r := range reps {
		for _, w := range r.Workers {
			if w.Worker < 0 || w.Worker >= 1<<16 {
				continue
			}
			for len(out) <= w.Worker {
				out = append(out, WorkerReport{Worker: len(out), Core: -1})
			}
			o := &out[w.Worker]
			o.Core, o.IOs = w.Core, o.IOs+w.IOs
			o.CPU.UserSeconds += w.CPU.UserSeconds
			o.CPU.SystemSeconds += w.CPU.SystemSeconds
		}
	}
	for i := range out {
		c := &out[i].CPU
		c.UserSeconds, c.SystemSeconds = round6(c.UserSeconds), round6(c.SystemSeconds)
		if out[i].IOs > 0 {
			c.NSPerIO = round3((c.UserSeconds + c.SystemSeconds) * 1e9 / float64(out[i].IOs))
		}
	}
	return out
}
