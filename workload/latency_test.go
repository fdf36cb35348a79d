package workload

import (
	"slices"
	"testing"
)

// TestLatencyRecorderMatchesHdrHistogram: the inline recorder puts every value in the
// cell HdrHistogram's own RecordValue uses, across the whole range and at every
// bucket edge, so histograms built from it merge and report exactly as before.
func TestLatencyRecorderMatchesHdrHistogram(t *testing.T) {
	var values []int64
	for v := int64(LatencyLowest); v < 5000; v++ {
		values = append(values, v)
	}
	for p := int64(2048); p > 0 && p <= LatencyHighest; p <<= 1 {
		values = append(values, p-1, p, p+1, p+p/3)
	}
	r := newRNG(7, 0, 0)
	for i := 0; i < 100000; i++ {
		values = append(values, LatencyLowest+int64(r.below(uint64(LatencyHighest))))
	}
	values = append(values, LatencyHighest)

	rec := newLatencyRecorder()
	want := NewLatencyHistogram()
	for _, v := range values {
		rec.record(v)
		if err := want.RecordValue(v); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.histogram()
	if !slices.Equal(got.Export().Counts, want.Export().Counts) {
		for i, c := range want.Export().Counts {
			if got.Export().Counts[i] != c {
				t.Fatalf("count %d: recorder %d, hdrhistogram %d", i, got.Export().Counts[i], c)
			}
		}
		t.Fatal("counts differ in length")
	}
	if got.TotalCount() != int64(len(values)) || got.Min() != want.Min() || got.Max() != want.Max() ||
		got.ValueAtPercentile(99.9) != want.ValueAtPercentile(99.9) || got.Mean() != want.Mean() {
		t.Errorf("recorder: n %d min %d max %d p99.9 %d mean %v; hdrhistogram: n %d min %d max %d p99.9 %d mean %v",
			got.TotalCount(), got.Min(), got.Max(), got.ValueAtPercentile(99.9), got.Mean(),
			want.TotalCount(), want.Min(), want.Max(), want.ValueAtPercentile(99.9), want.Mean())
	}
	// The result merges into a fresh histogram without dropping anything.
	if dropped := NewLatencyHistogram().Merge(got); dropped != 0 {
		t.Errorf("merge dropped %d samples", dropped)
	}
	rec.reset()
	if rec.histogram().TotalCount() != 0 {
		t.Error("reset left counts")
	}
}
