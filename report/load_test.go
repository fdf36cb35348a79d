package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/workload"
)

func encodeDoc(t testing.TB, d any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadRoundTripRunAndSweep(t *testing.T) {
	run := Build(fixtureMeta(randrwConfig()), randrwResult(t), "")
	l, err := Load(bytes.NewReader(encodeDoc(t, run)))
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind() != "run" || l.Run == nil || l.Run.Total.All.IOs != run.Total.All.IOs {
		t.Fatalf("loaded %+v", l)
	}
	// The rebuilt result renders exactly like the live one.
	res, err := l.Run.Result()
	if err != nil {
		t.Fatal(err)
	}
	var live, again bytes.Buffer
	opts := TextOptions{LatencySummary: true, Buckets: true, Mixed: true}
	if err := WriteText(&live, randrwResult(t), opts); err != nil {
		t.Fatal(err)
	}
	if err := WriteText(&again, res, opts); err != nil {
		t.Fatal(err)
	}
	if live.String() != again.String() {
		t.Errorf("text of the loaded run differs from the live one:\n%s\n---\n%s", again.String(), live.String())
	}

	ok := Build(fixtureMeta(randreadConfig()), randreadResult(t), "")
	sw := SweepDocument{Schema: SweepSchema, Status: SweepFailedPoints, Points: []SweepPoint{
		{Params: ParamsOf(&ok), Result: &ok},
		{Params: SweepParams{QueueDepth: 64, QPairs: 1, Workers: 1, IOSize: 4096, Pattern: "randrw", ReadPercent: 70}, Error: "open: no device"},
	}}
	l, err = Load(bytes.NewReader(encodeDoc(t, sw)))
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind() != "sweep" || len(l.Sweep.Points) != 2 || !l.Sweep.Points[1].Failed() || l.Sweep.Points[0].Failed() {
		t.Fatalf("loaded sweep %+v", l.Sweep)
	}
}

func TestLoadRejects(t *testing.T) {
	run := Build(fixtureMeta(randreadConfig()), randreadResult(t), "")
	good := string(encodeDoc(t, run))
	for name, tc := range map[string]struct{ in, want string }{
		"empty":        {"", "not a JSON document"},
		"not json":     {"IOPS 12345", "not a JSON document"},
		"no schema":    {`{"a":1}`, `no "schema" key`},
		"other schema": {`{"schema":"fio/3"}`, `schema "fio/3"`},
		"trailing":     {good + "{}", "after top-level value"},
		"bad hist":     {strings.Replace(good, run.Total.All.Histogram, "HISTx", 1), "decode histogram"},
		"bad bounds":   {strings.Replace(good, `"significant_digits": 3`, `"significant_digits": 2`, 1), "would not merge exactly"},
		"bad device":   {strings.Replace(good, `"device": 1`, `"device": 7`, 1), "jobs[2].device 7"},
		"sweep point":  {`{"schema":"nvmeperf.sweep/v1","points":[{"params":{"queue_depth":1}}]}`, "neither a result nor an error"},
	} {
		_, err := Load(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one containing %q", name, err, tc.want)
		}
	}
}

// FuzzLoad feeds the loader arbitrary bytes, seeded with valid runs and sweeps and
// their corruptions: it must return a document or an error, never panic, and whatever
// it accepts must rebuild and recompute without error.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"randread.json.golden", "randrw.json.golden", "failed.json.golden", "verify_interrupted.json.golden"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	run := Build(fixtureMeta(randrwConfig()), randrwResult(f), "")
	f.Add(encodeDoc(f, SweepDocument{Schema: SweepSchema, Points: []SweepPoint{{Params: ParamsOf(&run), Result: &run}}}))
	f.Add([]byte(`{"schema":"nvmeperf.result/v1","histogram_format":{"encoding":"hdrhistogram-v2-compressed-base64","unit":"ns","lowest":1,"highest":60000000000,"significant_digits":3},"total":{"all":{"histogram":"HISTFAAAAB54nJNpmSzMwMDAxQABzFCaEUzOmMRg/wEiAgA3KAOh"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Load(bytes.NewReader(data))
		if err != nil {
			return
		}
		docs := []*Document{l.Run}
		if l.Sweep != nil {
			docs = nil
			for _, p := range l.Sweep.Points {
				if p.Result != nil {
					docs = append(docs, p.Result)
				}
			}
		}
		for _, d := range docs {
			if _, err := d.Result(); err != nil {
				t.Fatalf("accepted document does not rebuild: %v", err)
			}
			if err := Recompute(d, nil); err != nil {
				t.Fatalf("accepted document does not recompute: %v", err)
			}
			if _, err := MetricsOf(d.Total.All); err != nil {
				t.Fatalf("accepted document has no metrics: %v", err)
			}
		}
	})
}

// TestMergeConcurrentEqualsOneHistogram: merging runs taken at the same time gives the
// percentiles of one histogram built from every sample, and sums the rates.
func TestMergeConcurrentEqualsOneHistogram(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	all := workload.NewLatencyHistogram()
	var docs []Document
	var sumIOPS float64
	for src := range 3 {
		var lat []int64
		for range 2000 + 500*src {
			v := int64(10_000 + rng.ExpFloat64()*float64(20_000*(src+1)))
			lat = append(lat, v)
			if err := all.RecordValue(v); err != nil {
				t.Fatal(err)
			}
		}
		res := workload.Result{
			Start: fixedStart.Add(time.Duration(src) * 100 * time.Millisecond), Duration: 2 * time.Second,
			Jobs: []workload.Job{{Target: simDevice, Core: src, QPairs: 1, Read: readSide(t, 4096, lat), Write: workload.Side{Latency: hist(t, nil)}}},
		}
		cfg := randreadConfig()
		cfg.Cores = []int{src}
		d := Build(fixtureMeta(cfg), res, "")
		sumIOPS += d.Total.All.IOPS
		docs = append(docs, d)
	}
	m, err := MergeConcurrent(docs, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range DefaultPercentiles {
		got, _ := m.Total.All.Latency.Percentiles.At(p)
		if want := all.ValueAtPercentile(p); got != want {
			t.Errorf("p%v: merged %d, one histogram of all samples %d", p, got, want)
		}
	}
	h, err := m.Total.All.histogram()
	if err != nil || !h.Equals(all) {
		t.Errorf("merged histogram differs from the histogram of all samples (err %v)", err)
	}
	if m.Total.All.IOs != uint64(all.TotalCount()) || m.Total.All.IOPS != round3(sumIOPS) {
		t.Errorf("total IOs %d IOPS %v, want %d and %v", m.Total.All.IOs, m.Total.All.IOPS, all.TotalCount(), sumIOPS)
	}
	if m.Merge == nil || m.Merge.Sources != 3 || len(m.Sources) != 3 || len(m.Jobs) != 3 {
		t.Fatalf("merge info %+v, %d sources, %d jobs", m.Merge, len(m.Sources), len(m.Jobs))
	}
	if m.DurationSeconds < 1.79 || m.DurationSeconds > 1.81 {
		t.Errorf("common window %v s, want 1.8 (starts staggered by 0.1 s)", m.DurationSeconds)
	}
	if _, err := Load(bytes.NewReader(encodeDoc(t, m))); err != nil {
		t.Errorf("merged document does not load: %v", err)
	}

	// A different configuration is refused, and accepted with force.
	other := docs[1]
	other.Config.IOSize = 8192
	if _, err := MergeConcurrent([]Document{docs[0], other}, false); err == nil || !strings.Contains(err.Error(), "io_size 4096 vs 8192") {
		t.Errorf("mismatched merge: %v", err)
	}
	if m, err := MergeConcurrent([]Document{docs[0], other}, true); err != nil || len(m.Merge.Forced) != 1 {
		t.Errorf("forced merge: %v %+v", err, m.Merge)
	}
	// Windows that do not overlap were not taken at the same time.
	late := docs[1]
	late.StartTime = fixedStart.Add(time.Hour).Format(time.RFC3339Nano)
	if _, err := MergeConcurrent([]Document{docs[0], late}, false); err == nil || !strings.Contains(err.Error(), "do not overlap") {
		t.Errorf("disjoint windows: %v", err)
	}
}

func TestMergeRepetitions(t *testing.T) {
	var reps []Document
	all := workload.NewLatencyHistogram()
	for i := range 6 {
		lat := linear(int64(10_000+1000*i), 10, 1000)
		for _, v := range lat {
			_ = all.RecordValue(v)
		}
		res := workload.Result{Start: fixedStart.Add(time.Duration(i) * time.Minute), Duration: time.Second,
			Jobs: []workload.Job{{Target: simDevice, Core: 0, QPairs: 1, Read: readSide(t, 4096, lat), Write: workload.Side{Latency: hist(t, nil)}}}}
		reps = append(reps, Build(fixtureMeta(randreadConfig()), res, ""))
	}
	m, err := MergeRepetitions(reps)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Repetitions) != 6 || m.DurationSeconds != 6 || m.Total.All.IOs != 6000 || m.Total.All.IOPS != 1000 {
		t.Fatalf("merged: %d reps, %v s, %d IOs, %v IOPS", len(m.Repetitions), m.DurationSeconds, m.Total.All.IOs, m.Total.All.IOPS)
	}
	if got, _ := m.Total.All.Latency.Percentiles.At(99); got != all.ValueAtPercentile(99) {
		t.Errorf("p99 %d, want %d", got, all.ValueAtPercentile(99))
	}
	p50 := m.RepetitionStats["p50"]
	// Medians of the repetitions are about 15, 16, ..., 20 µs: their median is 17.5 µs.
	if p50.N != 6 || p50.Median < 17_000 || p50.Median > 18_000 || p50.Low == nil || p50.High == nil || *p50.Low > p50.Median || *p50.High < p50.Median {
		t.Errorf("p50 estimate %+v", p50)
	}
	if iops := m.RepetitionStats["iops"]; iops.Median != 1000 {
		t.Errorf("iops estimate %+v", iops)
	}
	// With three repetitions there is no 95% interval, and the JSON still encodes.
	m3, err := MergeRepetitions(reps[:3])
	if err != nil {
		t.Fatal(err)
	}
	if e := m3.RepetitionStats["p99"]; e.Low != nil || e.N != 3 {
		t.Errorf("3 repetitions: %+v, want no interval", e)
	}
	if err := WriteJSON(&bytes.Buffer{}, m3); err != nil {
		t.Error(err)
	}
}

// Ranks of one run across hosts merge only as a whole world, in rank order, and the
// merge says how far apart they started.
func TestMergeConcurrentRanks(t *testing.T) {
	rank := func(r, world int, startOffset time.Duration) Document {
		res := workload.Result{
			Start: fixedStart.Add(startOffset), Duration: 2 * time.Second,
			Jobs: []workload.Job{{Target: simDevice, Core: 0, QPairs: 1, Read: readSide(t, 4096, []int64{20_000, 30_000}), Write: workload.Side{Latency: hist(t, nil)}}},
		}
		meta := fixtureMeta(randreadConfig())
		meta.Host.Rank, meta.Host.WorldSize = r, world
		return Build(meta, res, "")
	}
	docs := []Document{rank(2, 3, 3*time.Millisecond), rank(0, 3, 0), rank(1, 3, time.Millisecond)}
	m, err := MergeConcurrent(docs, false)
	if err != nil {
		t.Fatal(err)
	}
	if m.Merge.WorldSize != 3 || fmt.Sprint(m.Merge.Ranks) != "[0 1 2]" {
		t.Errorf("world %d ranks %v", m.Merge.WorldSize, m.Merge.Ranks)
	}
	for i, s := range m.Sources {
		if s.Host.Rank != i {
			t.Errorf("source %d is rank %d: sources not in rank order", i, s.Host.Rank)
		}
	}
	if got := m.Merge.StartSkewSeconds; got < 0.0029 || got > 0.0031 {
		t.Errorf("start skew %v s, want 0.003", got)
	}
	if docs[0].Host.Rank != 2 {
		t.Error("MergeConcurrent reordered its caller's slice")
	}

	for _, c := range []struct {
		docs []Document
		want string
	}{
		{[]Document{rank(0, 3, 0), rank(2, 3, 0)}, "ranks 1 of 0..2 are missing"},
		{[]Document{rank(0, 2, 0), rank(0, 2, 0)}, "ranks 1 of 0..1 are missing; ranks 0 are given more than once"},
		{[]Document{rank(0, 2, 0), rank(1, 3, 0)}, "source 1 (rank 1) is from a world of 3 ranks"},
	} {
		_, err := MergeConcurrent(c.docs, false)
		var inc *IncomparableError
		if !errors.As(err, &inc) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("merge of ranks: %v, want %q", err, c.want)
		}
		if m, err := MergeConcurrent(c.docs, true); err != nil || len(m.Merge.Forced) == 0 {
			t.Errorf("--force: %v, forced %v", err, m.Merge.Forced)
		}
	}
}
