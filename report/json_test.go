package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/nvmeperf/nvmeperf/workload"
)

func TestJSONGolden(t *testing.T) {
	cases := []struct {
		name   string
		meta   Meta
		res    func(testing.TB) workload.Result
		status string
	}{
		{"randread.json.golden", fixtureMeta(randreadConfig()), randreadResult, "ok"},
		{"randrw.json.golden", fixtureMeta(randrwConfig()), randrwResult, "io_errors"},
		{"failed.json.golden", fixtureMeta(randreadConfig()), failedResult, "device_failed: controller fatal status (CSTS.CFS=1)"},
		{"verify_interrupted.json.golden", fixtureMeta(func() Config { c := randrwConfig(); c.Verify = true; return c }()), verifyResult, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteJSON(&b, Build(c.meta, c.res(t), c.status)); err != nil {
				t.Fatal(err)
			}
			golden(t, c.name, b.Bytes())
			// Deterministic: a second build of an equal input gives the same bytes.
			var again bytes.Buffer
			if err := WriteJSON(&again, Build(c.meta, c.res(t), c.status)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), again.Bytes()) {
				t.Error("two builds of the same run differ")
			}
		})
	}
}

// percentileKeys are the fio-style keys every stats block must carry.
var percentileKeys = []string{"1.000000", "5.000000", "10.000000", "20.000000", "30.000000", "40.000000",
	"50.000000", "60.000000", "70.000000", "80.000000", "90.000000", "95.000000", "99.000000", "99.500000",
	"99.900000", "99.950000", "99.990000"}

func decodeMap(t *testing.T, d Document) map[string]any {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJSON(&b, d); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(b.String(), "}\n") {
		t.Errorf("document does not end with a newline")
	}
	var m map[string]any
	dec := json.NewDecoder(&b)
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func requireKeys(t *testing.T, where string, v any, keys ...string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: %T, want an object", where, v)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: missing key %q", where, k)
		}
	}
	return m
}

func requireStats(t *testing.T, where string, v any) {
	t.Helper()
	s := requireKeys(t, where, v, "ios", "bytes", "iops", "mibps", "errors", "latency_ns", "histogram")
	lat := requireKeys(t, where+".latency_ns", s["latency_ns"], "min", "max", "mean", "stddev", "percentiles")
	pct := requireKeys(t, where+".latency_ns.percentiles", lat["percentiles"], percentileKeys...)
	if len(pct) != len(percentileKeys) {
		t.Errorf("%s: %d percentiles, want %d", where, len(pct), len(percentileKeys))
	}
	if h, _ := s["histogram"].(string); h == "" {
		t.Errorf("%s: histogram is not a non-empty string", where)
	}
}

func TestJSONRequiredKeys(t *testing.T) {
	for name, c := range map[string]struct {
		res    workload.Result
		status string
	}{
		"ok":     {randreadResult(t), "ok"},
		"failed": {failedResult(t), ""},
	} {
		t.Run(name, func(t *testing.T) {
			m := decodeMap(t, Build(fixtureMeta(randreadConfig()), c.res, c.status))
			requireKeys(t, "document", m, "schema", "nvmeperf_version", "command_line", "start_time", "status",
				"host", "config", "devices", "jobs", "total", "duration_seconds")
			if m["schema"] != Schema {
				t.Errorf("schema = %v, want %q", m["schema"], Schema)
			}
			if _, err := time.Parse(time.RFC3339Nano, m["start_time"].(string)); err != nil {
				t.Errorf("start_time: %v", err)
			}
			if got := m["start_time"]; got != "2026-01-02T03:04:05.123456789Z" {
				t.Errorf("start_time = %v, want the result's start with nanoseconds", got)
			}
			if _, ok := m["command_line"].([]any); !ok {
				t.Errorf("command_line is %T, want an array", m["command_line"])
			}
			requireKeys(t, "host", m["host"], "hostname", "os", "arch", "kernel", "cpu_model", "num_cpu", "go_version")
			requireKeys(t, "config", m["config"], "workload", "read_percent", "queue_depth", "io_size", "seconds",
				"warmup_seconds", "num_ios", "core_mask", "cores", "qpairs_per_ns", "io_queue_size", "max_completions",
				"zipf_theta", "continue_on_error", "buffer_align", "seed", "doorbell", "verify")
			devices := m["devices"].([]any)
			if len(devices) != 2 {
				t.Fatalf("%d devices, want 2 distinct targets", len(devices))
			}
			for _, d := range devices {
				requireKeys(t, "device", d, "name", "trid", "transport", "model", "serial", "firmware", "nsid",
					"lba_size", "capacity_bytes")
			}
			jobs := m["jobs"].([]any)
			if len(jobs) != len(c.res.Jobs) {
				t.Fatalf("%d jobs, want %d", len(jobs), len(c.res.Jobs))
			}
			for _, j := range jobs {
				jm := requireKeys(t, "job", j, "device", "core", "qpairs", "read", "write", "all")
				for _, dir := range []string{"read", "write", "all"} {
					requireStats(t, "job."+dir, jm[dir])
				}
			}
			total := requireKeys(t, "total", m["total"], "read", "write", "all")
			for _, dir := range []string{"read", "write", "all"} {
				requireStats(t, "total."+dir, total[dir])
			}
			_, hasError := m["error"]
			if wantError := c.res.Err != nil; hasError != wantError {
				t.Errorf("error key present = %v, want %v", hasError, wantError)
			}
		})
	}
}

func TestJSONDevicesDeduplicated(t *testing.T) {
	d := Build(fixtureMeta(randreadConfig()), randreadResult(t), "ok")
	if len(d.Devices) != 2 || d.Devices[0].Name != simDevice.Name || d.Devices[1].Name != uringDevice.Name {
		t.Fatalf("devices = %+v, want sim then nvme0n1", d.Devices)
	}
	if got := []int{d.Jobs[0].Device, d.Jobs[1].Device, d.Jobs[2].Device}; !slices.Equal(got, []int{0, 0, 1}) {
		t.Errorf("job device indices = %v, want [0 0 1]", got)
	}
	if d.Devices[0].CapacityBytes != 1<<30 || d.Devices[0].LBASize != 512 || d.Devices[0].MaxTransferBytes != 128<<10 {
		t.Errorf("device 0 = %+v, want the target's capacity, LBA size and MDTS", d.Devices[0])
	}
}

func TestJSONNumbersByHand(t *testing.T) {
	// 1000 reads of 512 bytes in 1 s at exactly 1..1000 ns (HDR is exact below 2048).
	res := workload.Result{Start: fixedStart, Duration: time.Second,
		Jobs: []workload.Job{{Target: simDevice, Read: readSide(t, 512, linear(1, 1, 1000))}}}
	d := Build(Meta{}, res, "ok")
	r := d.Jobs[0].Read
	if r.IOs != 1000 || r.Bytes != 512000 || r.IOPS != 1000 || r.MiBps != 0.488 {
		t.Errorf("ios/bytes/iops/mibps = %d/%d/%v/%v; want 1000/512000/1000/0.488", r.IOs, r.Bytes, r.IOPS, r.MiBps)
	}
	// Population standard deviation of 1..n is sqrt((n^2-1)/12).
	wantStd := math.Round(math.Sqrt((1000*1000-1)/12.0)*1000) / 1000
	if r.Latency.Min != 1 || r.Latency.Max != 1000 || r.Latency.Mean != 500.5 || r.Latency.StdDev != wantStd {
		t.Errorf("latency = %+v; want min 1, max 1000, mean 500.5, stddev %v", r.Latency, wantStd)
	}
	for p, want := range map[float64]int64{1: 10, 50: 500, 90: 900, 99: 990, 99.9: 999, 99.99: 1000} {
		if got, ok := r.Latency.Percentiles.At(p); !ok || got != want {
			t.Errorf("p%v = %d (present %v), want %d", p, got, ok, want)
		}
	}
	if d.Jobs[0].All.IOs != 1000 || d.Total.All.Latency.Mean != 500.5 || d.Total.Write.IOs != 0 {
		t.Errorf("all/total do not match the single read side: all %+v total %+v", d.Jobs[0].All, d.Total)
	}
}

func TestJSONTotalPercentilesFromMergedHistograms(t *testing.T) {
	// Disjoint latency sets: 1..1000 µs on core 0, 2000..2999 µs on core 1.
	fast, slow := linear(1000, 1000, 1000), linear(2_000_000, 1000, 1000)
	res := randreadResult(t)
	res.Jobs = res.Jobs[:2]
	d := Build(Meta{}, res, "ok")

	merged := hist(t, append(slices.Clone(fast), slow...))
	all := append(slices.Clone(fast), slow...)
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for _, p := range []float64{1, 50, 90, 99, 99.9} {
		got, _ := d.Total.All.Latency.Percentiles.At(p)
		if want := merged.ValueAtPercentile(p); got != want {
			t.Errorf("total p%v = %d, want %d from one histogram of every sample", p, got, want)
		}
		// And within HDR resolution of the exact nearest-rank percentile.
		exact := all[int(math.Ceil(p/100*float64(len(all))))-1]
		if !merged.ValuesAreEquivalent(got, exact) {
			t.Errorf("total p%v = %d, exact nearest-rank value %d", p, got, exact)
		}
	}
	p50, _ := d.Total.All.Latency.Percentiles.At(50)
	a, _ := d.Jobs[0].All.Latency.Percentiles.At(50)
	b, _ := d.Jobs[1].All.Latency.Percentiles.At(50)
	if avg := (a + b) / 2; math.Abs(float64(p50-avg)) < 100_000 {
		t.Errorf("total p50 %d is the mean of the job medians (%d): it must come from the merged histogram", p50, avg)
	}
	if math.Abs(float64(p50)-1_000_000) > 1000 {
		t.Errorf("total p50 = %d ns, want about 1 ms (the 1000th of 2000 samples)", p50)
	}
	if d.Total.All.Latency.Min != d.Jobs[0].All.Latency.Min || d.Total.All.Latency.Max != d.Jobs[1].All.Latency.Max {
		t.Errorf("total min/max %d/%d, want job 0's min and job 1's max", d.Total.All.Latency.Min, d.Total.All.Latency.Max)
	}
}

func TestJSONHistogramsRoundTrip(t *testing.T) {
	res := randrwResult(t)
	d := Build(Meta{}, res, "")
	check := func(name string, enc string, want *hdrhistogram.Histogram) {
		t.Helper()
		got, err := DecodeHistogram(enc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !got.Equals(want) {
			t.Errorf("%s: decoded histogram differs from the original", name)
		}
		if got.TotalCount() != want.TotalCount() || got.Min() != want.Min() || got.Max() != want.Max() {
			t.Errorf("%s: count/min/max %d/%d/%d, want %d/%d/%d", name,
				got.TotalCount(), got.Min(), got.Max(), want.TotalCount(), want.Min(), want.Max())
		}
		for _, p := range reportedPercentiles {
			if got.ValueAtPercentile(p) != want.ValueAtPercentile(p) {
				t.Errorf("%s: p%v %d, want %d", name, p, got.ValueAtPercentile(p), want.ValueAtPercentile(p))
			}
		}
	}
	check("read", d.Jobs[0].Read.Histogram, res.Jobs[0].Read.Latency)
	check("write", d.Jobs[0].Write.Histogram, res.Jobs[0].Write.Latency)
	both := workload.NewLatencyHistogram()
	both.Merge(res.Jobs[0].Read.Latency)
	both.Merge(res.Jobs[0].Write.Latency)
	check("all", d.Jobs[0].All.Histogram, both)
	check("total all", d.Total.All.Histogram, both)

	// Merging decoded job histograms reproduces the total exactly.
	two := randreadResult(t)
	dd := Build(Meta{}, two, "ok")
	sum := workload.NewLatencyHistogram()
	for _, j := range dd.Jobs {
		h, err := DecodeHistogram(j.All.Histogram)
		if err != nil {
			t.Fatal(err)
		}
		sum.Merge(h)
	}
	total, err := DecodeHistogram(dd.Total.All.Histogram)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Equals(total) {
		t.Error("merge of decoded job histograms differs from the decoded total")
	}
}

func TestJSONEmptySidesAreZeroNotNaN(t *testing.T) {
	// No I/O at all, nil histograms and a zero duration: every rate would be 0/0.
	res := workload.Result{Start: fixedStart, Jobs: []workload.Job{{Target: simDevice, Core: -1}}}
	d := Build(Meta{}, res, "")
	var b bytes.Buffer
	if err := WriteJSON(&b, d); err != nil { // encoding/json refuses NaN and Inf
		t.Fatal(err)
	}
	for name, s := range map[string]Stats{"read": d.Jobs[0].Read, "all": d.Jobs[0].All, "total": d.Total.All} {
		l := s.Latency
		if s.IOPS != 0 || s.MiBps != 0 || l.Min != 0 || l.Max != 0 || l.Mean != 0 || l.StdDev != 0 {
			t.Errorf("%s: %+v, want zeros", name, s)
		}
		if len(l.Percentiles) != len(percentileKeys) {
			t.Errorf("%s: %d percentiles, want all %d keys with zeros", name, len(l.Percentiles), len(percentileKeys))
		}
		for _, p := range l.Percentiles {
			if p.Value != 0 {
				t.Errorf("%s: p%v = %d, want 0", name, p.Percent, p.Value)
			}
		}
		h, err := DecodeHistogram(s.Histogram)
		if err != nil || h.TotalCount() != 0 {
			t.Errorf("%s: empty histogram decodes to %v, %v", name, h, err)
		}
	}
	// A run that completed nothing measured nothing: never "ok" (report.Judge).
	if !strings.HasPrefix(d.Status, StatusError+": no I/O completed") || len(d.Warnings) != 0 {
		t.Errorf("status %q warnings %v, want the no-I/O error and none", d.Status, d.Warnings)
	}
	if d.Config.Cores == nil || d.CommandLine == nil || d.Config.Targets == nil {
		t.Error("nil slices would encode as null; want []")
	}
}

func TestBuildStatus(t *testing.T) {
	failure := errors.New("sim: injected controller failure")
	withErrors := randrwResult(t) // 2 failed writes
	clean := randreadResult(t)
	interrupted := randreadResult(t)
	interrupted.Interrupted = true
	failed := failedResult(t)
	failed.Err = failure
	cases := []struct {
		name       string
		res        workload.Result
		status     string
		wantStatus string
		wantError  string
	}{
		{"derived ok", clean, "", "ok", ""},
		{"derived io errors", withErrors, "", "io_errors", "2 I/Os failed"},
		{"derived interrupted", interrupted, "", "interrupted", ""},
		{"derived error with failed I/Os", failed, "", "io_errors", "sim: injected controller failure"},
		{"given device failure", clean, "device_failed: CSTS.CFS set", "device_failed: CSTS.CFS set", "CSTS.CFS set"},
		{"given error", clean, "error: cannot open /dev/nvme0n1", "error: cannot open /dev/nvme0n1", "cannot open /dev/nvme0n1"},
		{"given status, Err wins the error text", failed, "device_failed: CSTS.CFS set", "device_failed: CSTS.CFS set", "sim: injected controller failure"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Build(Meta{}, c.res, c.status)
			if d.Status != c.wantStatus || d.Error != c.wantError {
				t.Errorf("status %q error %q; want %q and %q", d.Status, d.Error, c.wantStatus, c.wantError)
			}
			if d.Interrupted != c.res.Interrupted {
				t.Errorf("interrupted = %v, want %v", d.Interrupted, c.res.Interrupted)
			}
		})
	}
	// A failed run's document still holds what was measured.
	d := Build(fixtureMeta(randreadConfig()), failedResult(t), "")
	if d.Total.Read.IOs != 100 || d.Total.Read.Errors != 31 || d.DurationSeconds != 0.5 || d.Total.Read.IOPS != 200 {
		t.Errorf("failed run total read = %+v over %v s; want 100 ios, 31 errors, 200 IOPS over 0.5 s", d.Total.Read, d.DurationSeconds)
	}
}

func TestBuildLeavesResultAlone(t *testing.T) {
	res := randreadResult(t)
	before := res.Jobs[0].Read.Latency.Clone()
	Build(Meta{}, res, "ok")
	if err := WriteText(&bytes.Buffer{}, res, TextOptions{Buckets: true, Mixed: true}); err != nil {
		t.Fatal(err)
	}
	if !res.Jobs[0].Read.Latency.Equals(before) || res.Jobs[0].Write.Latency.TotalCount() != 0 {
		t.Error("reporting changed the result's histograms")
	}
}

func TestJSONVerifyBlocks(t *testing.T) {
	cfg := randrwConfig()
	cfg.Verify = true
	d := Build(fixtureMeta(cfg), verifyResult(t), "")
	if d.Status != StatusVerifyFailed {
		t.Errorf("status %q, want verify_failed (a mismatch outranks the interruption)", d.Status)
	}
	v := d.Jobs[0].Verify
	if v == nil || v.Checked != 5600 || v.Mismatched != 1 || v.Unwritten != 8 || len(v.FirstMismatches) != 1 {
		t.Fatalf("job verify = %+v", v)
	}
	if tv := d.Total.Verify; tv == nil || tv.Checked != v.Checked || tv.Mismatched != v.Mismatched ||
		tv.Unwritten != v.Unwritten || !slices.Equal(tv.FirstMismatches, v.FirstMismatches) {
		t.Errorf("total verify = %+v, want the single job's %+v", tv, v)
	}
	// Without verify mode there is no verify block at all.
	plain := Build(fixtureMeta(randreadConfig()), randreadResult(t), "ok")
	if plain.Jobs[0].Verify != nil || plain.Total.Verify != nil {
		t.Error("verify blocks present without verify mode")
	}
}

func TestPercentilesJSON(t *testing.T) {
	in := Percentiles{{1, 10}, {50, 500}, {99.99, 1000}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"1.000000":10,"50.000000":500,"99.990000":1000}`; string(b) != want {
		t.Errorf("marshal = %s, want %s (ascending, fio keys)", b, want)
	}
	var out Percentiles
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in, out) {
		t.Errorf("round trip = %v, want %v", out, in)
	}
	err = json.Unmarshal([]byte(`{"p99":1}`), &out)
	if err == nil || !strings.Contains(err.Error(), `"p99"`) {
		t.Errorf("bad key: err = %v, want it to name the key", err)
	}
	if _, err := json.Marshal(Percentiles{{math.NaN(), 1}}); err == nil {
		t.Error("NaN percent marshalled")
	}
}

func TestDecodeHistogramErrors(t *testing.T) {
	for _, in := range []string{"", "not base64!", "AAAA"} {
		if _, err := DecodeHistogram(in); err == nil || !strings.HasPrefix(err.Error(), "report: decode histogram") {
			t.Errorf("DecodeHistogram(%q) error = %v", in, err)
		}
	}
}
