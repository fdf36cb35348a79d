package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/workload"
)

// TestMPIRunStartsTogetherAndMerges launches three ranks with Open MPI's mpirun on
// this machine against the simulator, starting together with --start-at, and merges
// their documents: every rank present, starts within a few ms, the merged I/O count the
// sum of the ranks', and merged percentiles those of one histogram of every I/O.
func TestMPIRunStartsTogetherAndMerges(t *testing.T) {
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun not found: install Debian's openmpi-bin (make test does) to run the MPI launch test")
	}
	if testing.Short() {
		t.Skip("launches three processes under mpirun")
	}
	dir := t.TempDir()
	// Generous lead time: three processes open simulated controllers on a loaded
	// 2-core machine before the instant.
	startAt := time.Now().Add(8 * time.Second).UTC().Format(time.RFC3339Nano)
	args := []string{"--allow-run-as-root", "--oversubscribe", "-np", "3",
		"-x", "PATH", binary,
		"-q", "8", "-o", "4096", "-w", "randread", "-t", "1", "-a", "0.5", "-r", "trtype:sim nssize:64m",
		"--start-at", startAt, "--quiet", "--output-format", "json",
		"--output", filepath.Join(dir, "rank-{rank}.json")}
	cmd := exec.Command(mpirun, args...)
	cmd.Env = append(os.Environ(), "OMPI_MCA_plm_rsh_agent=", "OMPI_MCA_btl=self", "OMPI_MCA_rmaps_base_oversubscribe=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mpirun: %v\n%s", err, out)
	}
	var files []string
	var docs []report.Document
	for r := range 3 {
		path := filepath.Join(dir, fmt.Sprintf("rank-%d.json", r))
		l, err := report.LoadFile(path)
		if err != nil {
			t.Fatalf("rank %d wrote no usable document: %v\n%s", r, err, out)
		}
		d := *l.Run
		if d.Host.Rank != r || d.Host.WorldSize != 3 || d.Host.Launcher != "openmpi" {
			t.Errorf("%s: host rank %d of %d from %q, want rank %d of 3 from openmpi", path, d.Host.Rank, d.Host.WorldSize, d.Host.Launcher, r)
		}
		if d.Status != report.StatusOK {
			t.Errorf("rank %d: status %q", r, d.Status)
		}
		files = append(files, path)
		docs = append(docs, d)
	}

	res := runBinary(t, append([]string{"merge"}, files...)...)
	if res.code != 0 {
		t.Fatalf("merge: exit %d: %s", res.code, res.stderr)
	}
	l, err := report.Load(strings.NewReader(res.stdout))
	if err != nil {
		t.Fatal(err)
	}
	m := l.Run
	if m.Merge == nil || m.Merge.WorldSize != 3 || fmt.Sprint(m.Merge.Ranks) != "[0 1 2]" {
		t.Fatalf("merge info %+v: want ranks 0..2 of 3", m.Merge)
	}
	if skew := m.Merge.StartSkewSeconds; skew > 0.010 {
		t.Errorf("ranks started %.3f ms apart, want a few ms at most", skew*1e3)
	}
	var sum uint64
	all := workload.NewLatencyHistogram()
	for _, d := range docs {
		sum += d.Total.All.IOs
		h, err := report.DecodeHistogram(d.Total.All.Histogram)
		if err != nil {
			t.Fatal(err)
		}
		all.Merge(h)
	}
	if m.Total.All.IOs != sum || sum == 0 {
		t.Errorf("merged %d I/Os, the ranks did %d", m.Total.All.IOs, sum)
	}
	for _, p := range m.Total.All.Latency.Percentiles {
		if want := all.ValueAtQuantile(p.Percent); p.Value != want {
			t.Errorf("merged p%v = %d ns, one histogram of every I/O says %d", p.Percent, p.Value, want)
		}
	}

	// A rank missing is not a whole run: exit 2 naming it.
	res = runBinary(t, "merge", files[0], files[2])
	if res.code != 2 || !strings.Contains(res.stderr, "ranks 1 of 0..2 are missing") {
		t.Errorf("merge without rank 1: exit %d, %s", res.code, res.stderr)
	}
}

// A rank that is not ready by --start-at fails clearly instead of measuring late.
func TestStartAtInThePastFails(t *testing.T) {
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	res := runBinary(t, "-q", "1", "-o", "4096", "-w", "randread", "-t", "1", "-r", "trtype:sim nssize:16m", "--start-at", past, "--output-format", "json")
	if res.code != 1 || !strings.Contains(res.stderr, "late") || !strings.Contains(res.stdout, `"status": "error`) {
		t.Errorf("start-at in the past: exit %d\nstdout %s\nstderr %s", res.code, res.stdout, res.stderr)
	}
}

func TestClusterFlagErrors(t *testing.T) {
	base := []string{"-q", "1", "-o", "4096", "-w", "randread", "-t", "1", "-r", "trtype:sim nssize:16m"}
	for _, c := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--start-at", "tomorrow"}, nil, `--start-at "tomorrow"`},
		{[]string{"--rank", "3", "--world-size", "2"}, nil, "rank 3 is outside a world of 2"},
		{[]string{"--world-size", "0"}, nil, "--world-size 0"},
		{[]string{"--start-at", "2030-01-01T00:00:00Z", "--barrier", "127.0.0.1:7700"}, nil, "--start-at and --barrier"},
		{[]string{"--output", "out-{rnak}.json"}, nil, "unknown placeholder {rnak}"},
		{nil, []string{"OMPI_COMM_WORLD_RANK=x", "OMPI_COMM_WORLD_SIZE=2"}, `OMPI_COMM_WORLD_RANK="x"`},
		{nil, []string{"JOB_COMPLETION_INDEX=1"}, "--world-size"},
	} {
		cmd := exec.Command(binary, append(append([]string{}, base...), c.args...)...)
		cmd.Env = append(os.Environ(), c.env...)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), c.want) {
			t.Errorf("%v %v: %v\n%s\nwant exit 2 naming %q", c.args, c.env, err, out, c.want)
		}
	}
}

// --start-at is one instant: a sweep or --repeat, whose later runs would all be late,
// is refused before anything runs.
func TestStartAtRefusedForManyRuns(t *testing.T) {
	for _, args := range [][]string{
		{"sweep", "-q", "1,2", "-o", "4k", "-w", "randread", "-t", "0.2", "-r", "trtype:sim nssize:16m", "--start-at", "2030-01-01T00:00:00Z"},
		{"--repeat", "2", "-q", "1", "-o", "4k", "-w", "randread", "-t", "0.2", "-r", "trtype:sim nssize:16m", "--start-at", "2030-01-01T00:00:00Z"},
	} {
		res := runBinary(t, args...)
		if res.code != 2 || !strings.Contains(res.stderr, "applies to a single run") || strings.Contains(res.stderr, "point 1/") {
			t.Errorf("%v: exit %d, %s", args, res.code, res.stderr)
		}
	}
}

// Two ranks started by hand line up at a barrier and both run.
func TestBarrierTwoRanks(t *testing.T) {
	dir := t.TempDir()
	addr := "127.0.0.1:" + fmt.Sprint(20000+os.Getpid()%20000)
	run := func(rank int) *exec.Cmd {
		return exec.Command(binary, "-q", "4", "-o", "4096", "-w", "randread", "-t", "0.5", "-r", "trtype:sim nssize:16m",
			"--rank", fmt.Sprint(rank), "--world-size", "2", "--barrier", addr, "--barrier-timeout", "60s",
			"--quiet", "--output-format", "json", "--output", filepath.Join(dir, "b-{rank}.json"))
	}
	r1 := run(1)
	if err := r1.Start(); err != nil {
		t.Fatal(err)
	}
	out0, err0 := run(0).CombinedOutput()
	err1 := r1.Wait()
	if err0 != nil || err1 != nil {
		t.Fatalf("rank 0: %v %s; rank 1: %v", err0, out0, err1)
	}
	for r := range 2 {
		l, err := report.LoadFile(filepath.Join(dir, fmt.Sprintf("b-%d.json", r)))
		if err != nil || l.Run.Host.Rank != r || l.Run.Config.Barrier != addr || l.Run.Total.All.IOs == 0 {
			t.Errorf("rank %d: %v %+v", r, err, l)
		}
	}
}
