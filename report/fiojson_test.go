package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/workload"
)

var fixtureUsage = ProcessUsage{User: 1500 * time.Millisecond, System: 300 * time.Millisecond, ContextSwitches: 90, MinorFaults: 12}

func TestFioJSONGolden(t *testing.T) {
	cases := []struct {
		name string
		meta Meta
		res  func(testing.TB) workload.Result
	}{
		{"randread.fio.json.golden", fixtureMeta(randreadConfig()), randreadResult},
		{"randrw.fio.json.golden", fixtureMeta(randrwConfig()), randrwResult},
	}
	for _, c := range cases {
		res := c.res(t)
		var b bytes.Buffer
		if err := WriteFioJSON(&b, BuildFio(c.meta, res, fixtureUsage)); err != nil {
			t.Fatal(err)
		}
		golden(t, c.name, b.Bytes())
	}
}

// TestFioJSONNumbers checks the fio units against the fixture worked out by hand.
func TestFioJSONNumbers(t *testing.T) {
	d := BuildFio(fixtureMeta(randreadConfig()), randreadResult(t), fixtureUsage)
	if len(d.Jobs) != 3 || !strings.HasPrefix(d.FioVersion, FioVersionPrefix) || d.Timestamp != fixedStart.Unix() {
		t.Fatalf("jobs %d, version %q, timestamp %d", len(d.Jobs), d.FioVersion, d.Timestamp)
	}
	j := d.Jobs[0]
	r := j.Read
	// 1000 reads of 4 KiB in 2 s at 1..1000 µs.
	if r.TotalIOs != 1000 || r.IOBytes != 4096000 || r.BWBytes != 2048000 || r.BW != 2000 || r.IOPS != 500 || r.Runtime != 2000 {
		t.Errorf("read %+v", r)
	}
	if r.ClatNS.N != 1000 || r.ClatNS.Min < 999 || r.ClatNS.Min > 1001 || r.ClatNS.Max < 999_000 || r.ClatNS.Max > 1_001_000 || len(r.ClatNS.Percentile) != len(reportedPercentiles) {
		t.Errorf("clat %+v", r.ClatNS)
	}
	var binned uint64
	for _, c := range r.ClatNS.Bins {
		binned += c
	}
	if binned != 1000 {
		t.Errorf("json+ bins hold %d I/Os, want 1000", binned)
	}
	if j.Write.TotalIOs != 0 || j.Write.ClatNS.Bins != nil {
		t.Errorf("write side of a read job: %+v", j.Write)
	}
	// 1..1000 µs: below 2 µs is 1 I/O (0.1 %), 750 µs-1 ms about 250 I/Os, nothing
	// at 2 ms or more.
	if j.LatencyUS["2"] != 0.1 || j.LatencyUS["1000"] < 24.9 || j.LatencyUS["1000"] > 25.2 || j.LatencyMS["4"] != 0 {
		t.Errorf("latency_us %v latency_ms %v", j.LatencyUS, j.LatencyMS)
	}
	// 1.8 s of CPU over 3 jobs of 2 s: 25 % user, 5 % system each.
	if j.UsrCPU != 25 || j.SysCPU != 5 || j.Ctx != 30 || j.IODepthLevel["32"] != 100 {
		t.Errorf("usr %v sys %v ctx %d depth %v", j.UsrCPU, j.SysCPU, j.Ctx, j.IODepthLevel)
	}
	if j.JobOptions["rw"] != "randread" || j.JobOptions["bs"] != "4096" || j.JobOptions["iodepth"] != "32" {
		t.Errorf("job options %v", j.JobOptions)
	}
}

// TestFioJSONReadByFioTools feeds the document to Debian's fio_jsonplus_clat2csv
// (package fio), fio's own json+ latency converter, and checks the CSV it writes.
func TestFioJSONReadByFioTools(t *testing.T) {
	tool, err := exec.LookPath("fio_jsonplus_clat2csv")
	if err != nil {
		if _, aptErr := exec.LookPath("apt-get"); aptErr != nil {
			t.Skip("fio_jsonplus_clat2csv (Debian package fio) is not installed and apt-get is unavailable to install it")
		}
		t.Fatal("fio_jsonplus_clat2csv is not installed: `make test` installs it (apt-get install fio), or install the fio package")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "out.json")
	var b bytes.Buffer
	res := randrwResult(t)
	if err := WriteFioJSON(&b, BuildFio(fixtureMeta(randrwConfig()), res, fixtureUsage)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "lat.csv")
	for _, args := range [][]string{{src, dest}, {"--validate", src, dest}} {
		out, err := exec.Command(tool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
		}
	}
	f, err := os.Open(filepath.Join(dir, "lat_job0.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd := csv.NewReader(f)
	rd.TrimLeadingSpace = true
	rd.FieldsPerRecord = -1
	rows, err := rd.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := func(name string) int {
		for i, h := range rows[0] {
			if strings.TrimSpace(h) == name {
				return i
			}
		}
		t.Fatalf("CSV has no column %q: %v", name, rows[0])
		return -1
	}
	var doc FioDocument
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []struct {
		name string
		n    uint64
	}{{"read", 700}, {"write", 300}} {
		ci, cum := col(dir.name+"_clat_ns_count"), col(dir.name+"_clat_ns_cumulative")
		var sum, last uint64
		for _, row := range rows[1:] {
			if ci >= len(row) || strings.TrimSpace(row[ci]) == "" {
				continue
			}
			c, err := strconv.ParseUint(strings.TrimSpace(row[ci]), 10, 64)
			if err != nil {
				t.Fatalf("count %q: %v", row[ci], err)
			}
			sum += c
			last, _ = strconv.ParseUint(strings.TrimSpace(row[cum]), 10, 64)
		}
		if sum != dir.n || last != dir.n {
			t.Errorf("%s: CSV counts sum to %d, last cumulative %d; want %d successful I/Os", dir.name, sum, last, dir.n)
		}
	}
}

// TestTransportStatsInJSON checks the additive transport_stats key.
func TestTransportStatsInJSON(t *testing.T) {
	res := randrwResult(t)
	res.Jobs[0].Transport = &target.QueueStats{Polls: 10, IdlePolls: 4, Completions: 1000, Submitted: 1000, SQDoorbells: 6, CQDoorbells: 6, Queued: 2}
	var b bytes.Buffer
	if err := WriteJSON(&b, Build(fixtureMeta(randrwConfig()), res, "")); err != nil {
		t.Fatal(err)
	}
	var d struct {
		Jobs []struct {
			TransportStats map[string]uint64 `json:"transport_stats"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(b.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	ts := d.Jobs[0].TransportStats
	if ts["polls"] != 10 || ts["idle_polls"] != 4 || ts["sq_mmio_doorbell_updates"] != 6 || ts["queued_requests"] != 2 || ts["submitted_requests"] != 1000 {
		t.Errorf("transport_stats %v", ts)
	}
}
