package workload

import (
	"math/bits"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The shared latency histogram's geometry (LatencyLowest 1 ns, LatencySigFigs 3) in
// HdrHistogram's layout: 2048 sub-buckets (the first power of two above 2×10^3), of
// which each bucket after the first adds the upper 1024 at twice the previous width.
const (
	latHalfCountMagnitude = 10
	latHalfCount          = 1 << latHalfCountMagnitude
	latSubBucketMask      = 1<<(latHalfCountMagnitude+1) - 1
)

// latCountsLen is the number of counts of a histogram with the shared bounds.
var latCountsLen = len(NewLatencyHistogram().Export().Counts)

// latencyRecorder counts latencies in exactly the cells HdrHistogram would use, with
// the index computed inline: recording is a few instructions instead of a call chain
// with error returns. histogram turns it into an hdrhistogram.Histogram for the
// Result, so everything downstream merges and encodes as before.
type latencyRecorder struct{ counts []int64 }

func newLatencyRecorder() latencyRecorder {
	return latencyRecorder{counts: make([]int64, latCountsLen)}
}

// record counts v nanoseconds; the caller clamps v to [LatencyLowest, LatencyHighest].
func (l *latencyRecorder) record(v int64) {
	bucket := 64 - bits.LeadingZeros64(uint64(v)|latSubBucketMask) - (latHalfCountMagnitude + 1)
	idx := (bucket+1)<<latHalfCountMagnitude + int(uint64(v)>>uint(bucket)) - latHalfCount
	l.counts[idx]++
}

func (l *latencyRecorder) reset() { clear(l.counts) }

// histogram returns the recorded latencies as a histogram with the shared bounds.
func (l *latencyRecorder) histogram() *hdrhistogram.Histogram {
	return hdrhistogram.Import(&hdrhistogram.Snapshot{
		LowestTrackableValue:  LatencyLowest,
		HighestTrackableValue: LatencyHighest,
		SignificantFigures:    LatencySigFigs,
		Counts:                l.counts,
	})
}
