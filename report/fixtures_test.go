package report

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/workload"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// fixedStart is the measured start of every fixture run.
var fixedStart = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)

var (
	simDevice = target.Info{
		Name: "sim 0000:00:00.0 NSID 1", TRID: "trtype:sim traddr:0000:00:00.0", Transport: "sim",
		Model: "nvmeperf simulated controller", Serial: "SIM0001", Firmware: "1.0",
		NSID: 1, LBASize: 512, Capacity: 1 << 30, MaxTransfer: 128 << 10,
	}
	uringDevice = target.Info{
		Name: "/dev/nvme0n1", TRID: "/dev/nvme0n1", Transport: "io_uring",
		Model: "Example NVMe SSD", Serial: "S4EXAMPLE", Firmware: "2B2QEXM7",
		NSID: 1, LBASize: 4096, Capacity: 1 << 40,
	}
)

// hist records values (ns) into a histogram with the shared bounds.
func hist(t testing.TB, values []int64) *hdrhistogram.Histogram {
	t.Helper()
	h := workload.NewLatencyHistogram()
	for _, v := range values {
		if err := h.RecordValue(v); err != nil {
			t.Fatalf("record %d: %v", v, err)
		}
	}
	return h
}

// linear returns n values from, from+step, ...
func linear(from, step int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = from + int64(i)*step
	}
	return out
}

// readSide is a side of n successful I/Os of size bytes with the given latencies.
func readSide(t testing.TB, size uint64, latencies []int64) workload.Side {
	return workload.Side{IOs: uint64(len(latencies)), Bytes: uint64(len(latencies)) * size, Latency: hist(t, latencies)}
}

// randreadResult: three 4 KiB random-read jobs over 2 s, checkable by hand:
//   - sim core 0: 1000 reads at 1, 2, ..., 1000 µs: 500 IOPS, 1.95 MiB/s, mean 500.5 µs
//   - sim core 1: 1000 reads at 2000, ..., 2999 µs (disjoint from core 0)
//   - nvme0n1 core 2: 500 reads all at 100 µs: 250 IOPS
//
// so the total's median is about 1000 µs (merged), not 1750 µs (mean of medians).
func randreadResult(t testing.TB) workload.Result {
	return workload.Result{
		Start:    fixedStart,
		Duration: 2 * time.Second,
		Jobs: []workload.Job{
			{Target: simDevice, Core: 0, QPairs: 1, Read: readSide(t, 4096, linear(1000, 1000, 1000)), Write: workload.Side{Latency: hist(t, nil)}},
			{Target: simDevice, Core: 1, Worker: 1, QPairs: 1, Read: readSide(t, 4096, linear(2_000_000, 1000, 1000)), Write: workload.Side{Latency: hist(t, nil)}},
			{Target: uringDevice, Core: 2, Worker: 2, QPairs: 1, Read: readSide(t, 4096, linear(100_000, 0, 500)), Write: workload.Side{Latency: hist(t, nil)}},
		},
		// Thread CPU of the three workers: 1 s of 2 at 1000 I/Os is 1 ms per I/O.
		Workers: []workload.WorkerCPU{
			{Core: 0, User: 750 * time.Millisecond, System: 250 * time.Millisecond, IOs: 1000},
			{Core: 1, User: 500 * time.Millisecond, System: 0, IOs: 1000},
			{Core: 2, User: 100 * time.Millisecond, System: 150 * time.Millisecond, IOs: 500},
		},
	}
}

// randrwResult: one 70/30 mixed job over 1 s: 700 reads at 50.0-119.9 µs, 300 writes
// at 10.00-24.95 µs and 2 failed writes.
func randrwResult(t testing.TB) workload.Result {
	w := readSide(t, 4096, linear(10_000, 50, 300))
	w.Errors = 2
	return workload.Result{
		Start:    fixedStart,
		Duration: time.Second,
		Jobs: []workload.Job{
			{Target: simDevice, Core: 0, QPairs: 1, Read: readSide(t, 4096, linear(50_000, 100, 700)), Write: w},
		},
		// 0.501 s of thread CPU for 1002 I/Os (errors count): 500 µs per I/O.
		Workers: []workload.WorkerCPU{{Core: 0, User: 400800 * time.Microsecond, System: 100200 * time.Microsecond, IOs: 1002}},
	}
}

// failedResult: the device failed after 0.5 s; one job measured a little, the other
// nothing (nil histograms, as a producer that never started might leave them).
func failedResult(t testing.TB) workload.Result {
	r := readSide(t, 4096, linear(20_000, 10, 100))
	r.Errors = 31
	return workload.Result{
		Start:    fixedStart,
		Duration: 500 * time.Millisecond,
		Err:      errors.New("nvme: controller fatal status (CSTS.CFS=1)"),
		Jobs: []workload.Job{
			{Target: simDevice, Core: 0, QPairs: 2, Read: r, Write: workload.Side{Latency: hist(t, nil)}},
			{Target: uringDevice, Core: -1, QPairs: 1},
		},
	}
}

// verifyResult: an interrupted verify run that found one mismatch.
func verifyResult(t testing.TB) workload.Result {
	res := randrwResult(t)
	res.Interrupted = true
	res.Jobs[0].Verify = workload.VerifyStats{Checked: 5600, Mismatched: 1, Unwritten: 8,
		First: []string{"LBA 4242 offset 16: want 0x5a got 0x00"}}
	return res
}

func fixtureMeta(cfg Config) Meta {
	return Meta{
		Version:     "v0.1.0-test",
		CommandLine: []string{"nvmeperf", "-q", "32", "-o", "4096", "-w", cfg.Workload, "-t", "2", "--json", "result.json"},
		Host: Host{Hostname: "bench-01", OS: "linux", Arch: "amd64", Kernel: "6.8.0-test",
			CPUModel: "Example CPU @ 3.00GHz", NumCPU: 16, GoVersion: "go1.26.0"},
		Config: cfg,
	}
}

func randreadConfig() Config {
	return Config{Workload: "randread", ReadPercent: 100, QueueDepth: 32, IOSize: 4096, Seconds: 2,
		CoreMask: "0x7", Cores: []int{0, 1, 2}, QPairsPerNS: 1, Seed: 1, Doorbell: "per-poll",
		Targets: []string{"trtype:sim traddr:0000:00:00.0", "/dev/nvme0n1"}}
}

func randrwConfig() Config {
	return Config{Workload: "randrw", ReadPercent: 70, QueueDepth: 8, IOSize: 4096, Seconds: 1, WarmupSeconds: 0.5,
		CoreMask: "0x1", Cores: []int{0}, QPairsPerNS: 1, IOQueueSize: 256, MaxCompletions: 16, ZipfTheta: 1.2,
		ContinueOnError: true, BufferAlign: 512, Seed: 42, Doorbell: "every-n", DoorbellN: 4,
		Targets: []string{"trtype:sim traddr:0000:00:00.0"}, Labels: map[string]string{"ci_job": "nightly"}}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test ./report -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s",
			name, got, want)
	}
}
