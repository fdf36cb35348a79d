package report

import (
	"bytes"
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/workload"
)

func TestTextGolden(t *testing.T) {
	cases := []struct {
		name string
		res  func(testing.TB) workload.Result
		opts TextOptions
	}{
		{"text_plain.golden", randreadResult, TextOptions{}},
		{"text_latency.golden", randreadResult, TextOptions{LatencySummary: true}},
		{"text_buckets.golden", randreadResult, TextOptions{LatencySummary: true, Buckets: true}},
		{"text_mixed.golden", randrwResult, TextOptions{LatencySummary: true, Mixed: true}},
		{"text_failed.golden", failedResult, TextOptions{LatencySummary: true}},
		{"text_verify_interrupted.golden", verifyResult, TextOptions{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteText(&b, c.res(t), c.opts); err != nil {
				t.Fatal(err)
			}
			golden(t, c.name, b.Bytes())
		})
	}
}

// tableRow finds the row whose label starts with label and returns its five numbers.
func tableRow(t *testing.T, text, label string) [5]float64 {
	t.Helper()
	for line := range strings.SplitSeq(text, "\n") {
		l, nums, ok := strings.Cut(line, ": ")
		if !ok || strings.TrimSpace(l) != label {
			continue
		}
		f := strings.Fields(nums)
		if len(f) != 5 {
			t.Fatalf("row %q has %d columns, want 5", line, len(f))
		}
		var out [5]float64
		for i, s := range f {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("row %q column %d: %v", line, i, err)
			}
			out[i] = v
		}
		return out
	}
	t.Fatalf("no row labelled %q in:\n%s", label, text)
	return [5]float64{}
}

func TestTextNumbersByHand(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, randreadResult(t), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	// Core 0: 1000 reads of 4 KiB in 2 s at 1..1000 µs.
	core0 := tableRow(t, text, "sim 0000:00:00.0 NSID 1 from core  0")
	if core0[0] != 500 || core0[1] != 1.95 {
		t.Errorf("core 0 IOPS, MiB/s = %v, %v; want 500, 1.95", core0[0], core0[1])
	}
	if math.Abs(core0[2]-500.5) > 0.5 || core0[3] != 1 || math.Abs(core0[4]-1000) > 1 {
		t.Errorf("core 0 avg/min/max = %v/%v/%v µs; want about 500.5/1/1000", core0[2], core0[3], core0[4])
	}
	// Total: 2500 I/Os in 2 s; the mean is weighted by I/O count (from the merged
	// histogram): (1000*500.5 + 1000*2499.5 + 500*100) / 2500 = 1220 µs.
	total := tableRow(t, text, "Total")
	if total[0] != 1250 || total[1] != 4.88 {
		t.Errorf("total IOPS, MiB/s = %v, %v; want 1250, 4.88", total[0], total[1])
	}
	if math.Abs(total[2]-1220) > 1.5 || total[3] != 1 || math.Abs(total[4]-2999) > 2 {
		t.Errorf("total avg/min/max = %v/%v/%v µs; want about 1220/1/2999", total[2], total[3], total[4])
	}
	// SPDK's layout: the header's colon lines up with every row's.
	lines := strings.Split(text, "\n")
	colon := strings.Index(lines[2], ":")
	for _, l := range lines[3:] {
		if strings.Contains(l, "from core") || strings.HasPrefix(l, "Total") {
			if len(l) <= colon+1 || l[colon:colon+2] != ": " {
				t.Errorf("row %q has no \": \" at column %d where the header has it", l, colon)
			}
		}
	}
}

func TestTextMixedRows(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, randrwResult(t), TextOptions{Mixed: true}); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	read := tableRow(t, text, "sim 0000:00:00.0 NSID 1 from core  0 read")
	write := tableRow(t, text, "sim 0000:00:00.0 NSID 1 from core  0 write")
	all := tableRow(t, text, "sim 0000:00:00.0 NSID 1 from core  0")
	if read[0] != 700 || write[0] != 300 || all[0] != 1000 {
		t.Errorf("IOPS read/write/all = %v/%v/%v; want 700/300/1000", read[0], write[0], all[0])
	}
	if all[3] != write[3] || all[4] != read[4] {
		t.Errorf("merged min/max %v/%v should be the write min %v and the read max %v", all[3], all[4], write[3], read[4])
	}
	if tr := tableRow(t, text, "Total read"); tr[0] != 700 {
		t.Errorf("Total read IOPS = %v, want 700", tr[0])
	}
	if !strings.Contains(text, "I/O errors in total: 2") {
		t.Errorf("failed writes not reported:\n%s", text)
	}
	var plain bytes.Buffer
	if err := WriteText(&plain, randrwResult(t), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), " read ") {
		t.Errorf("read rows without Mixed:\n%s", plain.String())
	}
}

func TestTextSummaryPercentiles(t *testing.T) {
	// 1000 exact values 1..1000 ns (HDR is exact below 2048): percentile p is the
	// ceil(p*10)-th value, e.g. 50% -> 500 ns = 0.500 µs, 99.9% -> 999 ns.
	res := workload.Result{Duration: 1e9, Jobs: []workload.Job{{Target: simDevice, Read: readSide(t, 512, linear(1, 1, 1000))}}}
	var b bytes.Buffer
	if err := WriteText(&b, res, TextOptions{LatencySummary: true}); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []string{
		" 50.00000% :     0.500us\n", " 99.90000% :     0.999us\n", " 99.99999% :     1.000us\n", "  1.00000% :     0.010us\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "% :"); n != len(summaryCutoffs) {
		t.Errorf("%d summary lines, want %d", n, len(summaryCutoffs))
	}
}

func TestTextBucketsAddUp(t *testing.T) {
	res := randreadResult(t)
	var b bytes.Buffer
	if err := WriteText(&b, res, TextOptions{Buckets: true}); err != nil {
		t.Fatal(err)
	}
	sections := strings.Split(b.String(), "Latency histogram for ")[1:]
	if len(sections) != len(res.Jobs)+1 {
		t.Fatalf("%d histogram sections, want %d (one per job and the merged one)", len(sections), len(res.Jobs)+1)
	}
	wantCounts := []int64{1000, 1000, 500, 2500}
	for i, sec := range sections {
		var sum int64
		var lastHi, lastPct float64
		for line := range strings.SplitSeq(sec, "\n") {
			open := strings.Index(line, "(")
			if !strings.Contains(line, " - ") || open < 0 {
				continue
			}
			var lo, hi, pct float64
			var count int64
			if _, err := fmtSscanBucket(line, &lo, &hi, &pct, &count); err != nil {
				t.Fatalf("section %d: line %q: %v", i, line, err)
			}
			if lo < lastHi || hi <= lo || count <= 0 {
				t.Errorf("section %d: bad range or count in %q (previous end %v)", i, line, lastHi)
			}
			sum += count
			lastHi, lastPct = hi, pct
		}
		if sum != wantCounts[i] || lastPct != 100 {
			t.Errorf("section %d: counts sum to %d ending at %v%%; want %d ending at 100%%", i, sum, lastPct, wantCounts[i])
		}
	}
}

func TestBucketRangeHoldsHDRBuckets(t *testing.T) {
	for _, v := range []int64{1, 15, 16, 17, 31, 32, 1000, 2047, 2048, 123456, 999_999_999, workload.LatencyHighest} {
		lo, w := bucketRange(v)
		if w <= 0 || w&(w-1) != 0 || lo%w != 0 || v < lo || v >= lo+w {
			t.Errorf("bucketRange(%d) = [%d, %d+%d): not an aligned power-of-two range holding it", v, lo, lo, w)
		}
		if v >= 2*bucketsPerOctave && w*bucketsPerOctave > v+1 {
			t.Errorf("bucketRange(%d) width %d: coarser than 1/%d of the value", v, w, bucketsPerOctave)
		}
	}
	// Every HDR bucket falls wholly inside one range, so counts are never split.
	h := hist(t, linear(1, 997, 100000))
	for _, bar := range h.Distribution() {
		l1, w1 := bucketRange(bar.From)
		l2, w2 := bucketRange(bar.To)
		if l1 != l2 || w1 != w2 {
			t.Fatalf("HDR bucket [%d, %d] straddles ranges [%d+%d) and [%d+%d)", bar.From, bar.To, l1, w1, l2, w2)
		}
	}
}

func TestTextFailedAndInterruptedSayPartial(t *testing.T) {
	for name, res := range map[string]workload.Result{"failed": failedResult(t), "interrupted": verifyResult(t)} {
		var b bytes.Buffer
		if err := WriteText(&b, res, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "the numbers cover the measured part only") {
			t.Errorf("%s run: no partial-results line:\n%s", name, b.String())
		}
		if nonFinite.MatchString(b.String()) {
			t.Errorf("%s run: NaN or Inf in text:\n%s", name, b.String())
		}
	}
}

// nonFinite matches how fmt prints NaN and infinities.
var nonFinite = regexp.MustCompile(`\b(NaN|[+-]?Inf)\b`)

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWritersReturnErrors(t *testing.T) {
	err := WriteText(failingWriter{}, randrwResult(t), TextOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), "report: ") || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteText to a failing writer: %v", err)
	}
	err = WriteJSON(failingWriter{}, Build(fixtureMeta(randrwConfig()), randrwResult(t), ""))
	if err == nil || !strings.HasPrefix(err.Error(), "report: ") || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteJSON to a failing writer: %v", err)
	}
}

// fmtSscanBucket parses a -LL line "lo - hi: pct%  (count)".
func fmtSscanBucket(line string, lo, hi, pct *float64, count *int64) (int, error) {
	f := strings.Fields(strings.NewReplacer(" - ", " ", ":", " ", "%", " ", "(", " ", ")", " ").Replace(line))
	if len(f) != 4 {
		return 0, errors.New("want 4 fields")
	}
	var err error
	for i, p := range []*float64{lo, hi, pct} {
		if *p, err = strconv.ParseFloat(f[i], 64); err != nil {
			return i, err
		}
	}
	if *count, err = strconv.ParseInt(f[3], 10, 64); err != nil {
		return 3, err
	}
	return 4, nil
}

func TestTextEdgeCases(t *testing.T) {
	// No jobs at all, and a device with a very short name: still a well-formed table.
	for name, res := range map[string]workload.Result{
		"no jobs":    {},
		"short name": {Duration: 1e9, Jobs: []workload.Job{{Target: target.Info{Name: "d"}, Read: readSide(t, 512, []int64{1000})}}},
	} {
		var b bytes.Buffer
		if err := WriteText(&b, res, TextOptions{LatencySummary: true, Buckets: true, Mixed: true}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		text := b.String()
		total := tableRow(t, text, "Total")
		if want := float64(len(res.Jobs)); total[0] != want {
			t.Errorf("%s: total IOPS %v, want %v", name, total[0], want)
		}
		lines := strings.Split(text, "\n")
		colon := strings.Index(lines[2], ": ")
		for _, l := range lines[3:] {
			if strings.HasPrefix(l, "Total") || strings.Contains(l, "from core") && strings.Contains(l, ".") {
				if len(l) <= colon+1 || l[colon:colon+2] != ": " {
					t.Errorf("%s: row %q not aligned with the header's colon at %d", name, l, colon)
				}
			}
		}
		d := Build(Meta{}, res, "")
		if err := WriteJSON(&bytes.Buffer{}, d); err != nil {
			t.Errorf("%s: JSON: %v", name, err)
		}
	}
}
