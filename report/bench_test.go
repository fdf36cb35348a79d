package report

import (
	"io"
	"testing"

	"github.com/nvmeperf/nvmeperf/workload"
)

// manyJobs is 16 cores x 4 namespaces of mixed I/O with a realistic spread of
// latencies (10 µs to 10 ms), the size of a large run's report.
func manyJobs(b *testing.B) workload.Result {
	res := randrwResult(b)
	job := res.Jobs[0]
	job.Read = readSide(b, 4096, linear(10_000, 997, 10_000))
	job.Write = readSide(b, 4096, linear(20_000, 1999, 5_000))
	res.Jobs = nil
	for i := range 64 {
		j := job
		j.Core = i % 16
		res.Jobs = append(res.Jobs, j)
	}
	return res
}

func BenchmarkBuildAndWriteJSON64Jobs(b *testing.B) {
	res := manyJobs(b)
	meta := fixtureMeta(randrwConfig())
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteJSON(io.Discard, Build(meta, res, "")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteTextBuckets64Jobs(b *testing.B) {
	res := manyJobs(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteText(io.Discard, res, TextOptions{LatencySummary: true, Buckets: true, Mixed: true}); err != nil {
			b.Fatal(err)
		}
	}
}
