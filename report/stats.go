package report

import (
	"fmt"
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/nvmeperf/nvmeperf/workload"
)

// side is one direction's counters with a histogram that is never nil, so the
// reporters need no nil checks. Histograms taken from a Result are only read; merged
// ones are fresh.
type side struct {
	ios, bytes, errors uint64
	hist               *hdrhistogram.Histogram
}

// emptyHistogram stands in for a Side whose producer left Latency nil.
func emptyHistogram() *hdrhistogram.Histogram { return workload.NewLatencyHistogram() }

func sideOf(s workload.Side) side {
	h := s.Latency
	if h == nil {
		h = emptyHistogram()
	}
	return side{ios: s.IOs, bytes: s.Bytes, errors: s.Errors, hist: h}
}

// merger accumulates sides into one with a fresh histogram of the shared bounds and
// remembers how many samples did not fit (only possible when a producer used other
// bounds than workload's).
type merger struct {
	side
	dropped int64
}

func newMerger() *merger { return &merger{side: side{hist: emptyHistogram()}} }

func (m *merger) add(s side) {
	m.ios += s.ios
	m.bytes += s.bytes
	m.errors += s.errors
	m.dropped += m.hist.Merge(s.hist)
}

// jobSides is one job's read, write and merged (read+write) sides.
type jobSides struct {
	read, write, all side
	dropped          int64
}

func sidesOf(j workload.Job) jobSides {
	r, w := sideOf(j.Read), sideOf(j.Write)
	m := newMerger()
	m.add(r)
	m.add(w)
	return jobSides{read: r, write: w, all: m.side, dropped: m.dropped}
}

// totals merges every job's sides: percentiles of the total come from these merged
// histograms, never from averaging per-job percentiles.
func totals(jobs []jobSides) (read, write, all side, dropped int64) {
	mr, mw, ma := newMerger(), newMerger(), newMerger()
	for _, j := range jobs {
		mr.add(j.read)
		mw.add(j.write)
		ma.add(j.read)
		ma.add(j.write)
	}
	return mr.side, mw.side, ma.side, mr.dropped + mw.dropped
}

// perSecond divides by the measured time; a zero or negative duration (a run that
// failed before measuring) gives 0 rather than Inf or NaN, which JSON cannot carry.
func perSecond(n float64, d time.Duration) float64 {
	s := d.Seconds()
	if s <= 0 {
		return 0
	}
	return n / s
}

func (s side) iops(d time.Duration) float64 { return perSecond(float64(s.ios), d) }

func (s side) mibps(d time.Duration) float64 {
	return perSecond(float64(s.bytes)/(1<<20), d)
}

// latency summary in nanoseconds; all zeros when nothing was recorded.
func (s side) minNS() int64 {
	if s.hist.TotalCount() == 0 {
		return 0
	}
	return s.hist.Min()
}

func (s side) maxNS() int64 {
	if s.hist.TotalCount() == 0 {
		return 0
	}
	return s.hist.Max()
}

func (s side) meanNS() float64 {
	if s.hist.TotalCount() == 0 {
		return 0
	}
	return finite(s.hist.Mean())
}

func (s side) stddevNS() float64 {
	if s.hist.TotalCount() == 0 {
		return 0
	}
	return finite(s.hist.StdDev())
}

// finite maps NaN and ±Inf to 0 so that no document ever holds a value JSON cannot
// represent.
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// round3 keeps three decimals: more digits of a rate or a mean are noise and make
// documents harder to read and diff.
func round3(x float64) float64 { return finite(math.Round(x*1000) / 1000) }

// droppedWarning explains samples a merge could not keep.
func droppedWarning(where string, n int64) string {
	return fmt.Sprintf("%s: %d latency samples outside the shared histogram range (%d..%d ns) were left out of merged percentiles",
		where, n, workload.LatencyLowest, workload.LatencyHighest)
}

// round6 keeps microseconds of a seconds figure.
func round6(x float64) float64 { return finite(math.Round(x*1e6) / 1e6) }
