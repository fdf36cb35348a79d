package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/report"
)

// End-to-end tests: the real binary, short runs on the simulated controller.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nvmeperf-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "nvmeperf")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building nvmeperf: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type e2eRun struct {
	code   int
	stdout string
	stderr string
	wall   time.Duration
}

func runBinary(t *testing.T, args ...string) e2eRun {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := e2eRun{stdout: out.String(), stderr: errb.String(), wall: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running nvmeperf: %v", err)
	}
	return r
}

// doc is the part of the JSON document the tests read.
type doc struct {
	report.Document
	raw map[string]any
}

func decodeDoc(t *testing.T, out string) doc {
	t.Helper()
	var d doc
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&d.Document); err != nil {
		t.Fatalf("stdout is not a JSON document: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value:\n%s", out)
	}
	if err := json.Unmarshal([]byte(out), &d.raw); err != nil {
		t.Fatal(err)
	}
	return d
}

func sim(keys string) string { return "trtype:sim " + keys }

func TestE2EJSONHasRequiredKeys(t *testing.T) {
	r := runBinary(t, "-q", "16", "-o", "4k", "-w", "randread", "-t", "0.5", "-r", sim("nssize:64m"), "--output-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	for _, k := range []string{"schema", "nvmeperf_version", "command_line", "start_time", "status", "host", "config", "devices", "jobs", "total"} {
		if _, ok := d.raw[k]; !ok {
			t.Errorf("missing key %q", k)
		}
	}
	if d.Schema != "nvmeperf.result/v1" || d.Status != "ok" {
		t.Errorf("schema %q status %q", d.Schema, d.Status)
	}
	dev := d.raw["devices"].([]any)[0].(map[string]any)
	for _, k := range []string{"trid", "transport", "model", "serial", "firmware", "nsid", "lba_size", "capacity_bytes"} {
		if _, ok := dev[k]; !ok {
			t.Errorf("device lacks %q", k)
		}
	}
	if dev["transport"] != "sim" || dev["capacity_bytes"].(float64) != 64<<20 {
		t.Errorf("device %v", dev)
	}
	total := d.raw["total"].(map[string]any)
	for _, side := range []string{"read", "write", "all"} {
		blk := total[side].(map[string]any)
		for _, k := range []string{"ios", "bytes", "iops", "mibps", "errors", "latency_ns", "histogram"} {
			if _, ok := blk[k]; !ok {
				t.Errorf("total.%s lacks %q", side, k)
			}
		}
		lat := blk["latency_ns"].(map[string]any)
		pct := lat["percentiles"].(map[string]any)
		for _, k := range []string{"50.000000", "99.000000", "99.900000", "99.990000"} {
			if _, ok := pct[k]; !ok {
				t.Errorf("total.%s percentiles lack %q", side, k)
			}
		}
	}
	// ios ≈ iops × seconds, and the histogram holds every I/O.
	all := d.Total.All
	if all.IOs == 0 {
		t.Fatal("no I/O measured")
	}
	if want := all.IOPS * d.DurationSeconds; math.Abs(float64(all.IOs)-want) > 0.01*want+1 {
		t.Errorf("ios %d but iops × seconds = %.0f", all.IOs, want)
	}
	h, err := report.DecodeHistogram(all.Histogram)
	if err != nil || uint64(h.TotalCount()) != all.IOs {
		t.Errorf("histogram count %v (%v), ios %d", h, err, all.IOs)
	}
	if d.Total.Write.IOs != 0 || d.Total.Read.IOs != all.IOs {
		t.Errorf("randread did writes: %+v", d.Total)
	}
}

func TestE2EReadShareFollowsM(t *testing.T) {
	r := runBinary(t, "-q", "32", "-o", "4k", "-w", "randrw", "-M", "70", "-d", "20000", "-t", "30", "-r", sim("nssize:64m"), "--output-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	share := float64(d.Total.Read.IOs) / float64(d.Total.All.IOs)
	if math.Abs(share-0.70) > 0.02 {
		t.Errorf("read share %.3f with -M 70 (%d of %d)", share, d.Total.Read.IOs, d.Total.All.IOs)
	}
}

func TestE2ENumberOfIOsHonoured(t *testing.T) {
	cores := allowedCPUs()
	args := []string{"-q", "8", "-o", "512", "-w", "randwrite", "-d", "1234", "-t", "60", "-r", sim("nssize:16m lbasize:512"), "--output-format", "json"}
	jobs := 1
	if len(cores) >= 2 {
		args = append(args, "-c", fmt.Sprintf("[%d,%d]", cores[0], cores[1]))
		jobs = 2
	}
	r := runBinary(t, args...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	if len(d.Jobs) != jobs {
		t.Fatalf("%d jobs, want %d", len(d.Jobs), jobs)
	}
	for i, j := range d.Jobs {
		if j.All.IOs != 1234 {
			t.Errorf("job %d did %d I/Os, want exactly -d 1234", i, j.All.IOs)
		}
	}
}

func TestE2EWarmupExcluded(t *testing.T) {
	r := runBinary(t, "-q", "8", "-o", "4k", "-w", "randread", "-t", "1", "-a", "1", "-r", sim("model:nand nssize:64m"), "--output-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	if r.wall < 2*time.Second {
		t.Errorf("run with 1 s warm-up and 1 s measurement took %v", r.wall)
	}
	if d.DurationSeconds < 0.9 || d.DurationSeconds > 1.3 {
		t.Errorf("measured duration %.3f s, want about 1 s (warm-up excluded)", d.DurationSeconds)
	}
	// With QD 8 on the nand model (~80 µs reads), 2 s would give about twice the I/Os.
	if want := d.Total.All.IOPS * d.DurationSeconds; math.Abs(float64(d.Total.All.IOs)-want) > 0.01*want+1 {
		t.Errorf("ios %d vs iops × measured seconds %.0f", d.Total.All.IOs, want)
	}
}

func TestE2EInterruptGivesPartialResults(t *testing.T) {
	cmd := exec.Command(binary, "-q", "16", "-o", "4k", "-w", "randread", "-t", "60", "-r", sim("model:nand nssize:64m"), "--output-format", "json")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("nvmeperf did not stop within 15 s of Ctrl-C")
	}
	if code := cmd.ProcessState.ExitCode(); code != exitSignal2 {
		t.Errorf("exit %d after Ctrl-C, want %d", code, exitSignal2)
	}
	d := decodeDoc(t, out.String())
	if d.Status != "interrupted" || !d.Interrupted {
		t.Errorf("status %q interrupted %v", d.Status, d.Interrupted)
	}
	if d.Total.All.IOs == 0 || d.DurationSeconds <= 0 || d.DurationSeconds > 10 {
		t.Errorf("partial results: %d I/Os over %.2f s", d.Total.All.IOs, d.DurationSeconds)
	}
	if !strings.Contains(errb.String(), "interrupted") {
		t.Errorf("stderr does not say it was interrupted: %q", errb.String())
	}
}

func TestE2ETextReport(t *testing.T) {
	r := runBinary(t, "-q", "8", "-o", "4k", "-w", "rw", "-M", "50", "-t", "0.3", "-r", sim("nssize:16m"), "-LL")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"Device Information", "SIM (embedded) NSID 1 from core", "Total", " read ", " write", "Summary latency data", "Latency histogram", "99.99999%"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text report lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestE2EDefaultsToSimulatorWhenNoNVMe(t *testing.T) {
	if matches, _ := filepath.Glob("/sys/bus/pci/devices/*/class"); len(matches) > 0 {
		for _, m := range matches {
			if b, _ := os.ReadFile(m); strings.HasPrefix(string(b), "0x010802") {
				t.Skip("this machine has NVMe controllers")
			}
		}
	}
	r := runBinary(t, "-q", "4", "-o", "4k", "-w", "read", "-t", "0.2", "--output-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "simulated controller") {
		t.Errorf("stderr does not say the simulator is used: %q", r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	if len(d.Devices) != 1 || d.Devices[0].Transport != "sim" {
		t.Errorf("devices %+v", d.Devices)
	}
}

func TestE2EVerifyRoundTripOnSim(t *testing.T) {
	// Writes carry the pattern and reads check it within one run: a sequential pass
	// writes, then randrw reads back blocks written in the same run.
	r := runBinary(t, "-q", "8", "-o", "4k", "-w", "randrw", "-M", "50", "-d", "4000", "-t", "30", "--verify",
		"-r", sim("nssize:4m store:mem"), "--output-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	d := decodeDoc(t, r.stdout)
	if d.Total.Verify == nil || d.Total.Verify.Checked == 0 || d.Total.Verify.Mismatched != 0 {
		t.Fatalf("verify totals %+v", d.Total.Verify)
	}
}

func TestE2EContinueOnErrorCountsInjectedErrors(t *testing.T) {
	// 100 of the namespace's 4096 blocks fail reads: -Q counts the errors and goes on.
	r := runBinary(t, "-q", "16", "-o", "4k", "-w", "randread", "-d", "20000", "-t", "30", "-Q",
		"-r", sim("nssize:16m faillba:0-99 failstatus:read-error"), "--output-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d with -Q: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	errs, ios := d.Total.All.Errors, d.Total.All.IOs
	if errs == 0 || ios+errs != 20000 {
		t.Fatalf("errors %d, ios %d: want both, summing to -d 20000", errs, ios)
	}
	if share := float64(errs) / 20000; share < 0.01 || share > 0.045 {
		t.Errorf("error share %.4f, want about 100/4096", share)
	}
	// Without -Q the first error ends the run: exit 1 and status io_errors.
	r = runBinary(t, "-q", "16", "-o", "4k", "-w", "randread", "-t", "30",
		"-r", sim("nssize:16m faillba:0-99"), "--output-format", "json")
	if r.code != exitFailed {
		t.Fatalf("exit %d without -Q, want %d", r.code, exitFailed)
	}
	d = decodeDoc(t, r.stdout)
	if d.Status != "io_errors" || !strings.Contains(d.Error, "unrecovered read error") || d.Total.All.Errors == 0 {
		t.Errorf("status %q error %q errors %d", d.Status, d.Error, d.Total.All.Errors)
	}
	if r.wall > 10*time.Second {
		t.Errorf("run with an error took %v to stop", r.wall)
	}
}

func TestE2EDeviceFailureGivesPartialResults(t *testing.T) {
	cases := []struct{ name, keys, why string }{
		{"controller fatal status", "fatalafter:700ms", "fatal"},
		{"surprise removal (BAR faults)", "removeafter:700ms", "faulted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runBinary(t, "-q", "16", "-o", "4k", "-w", "randread", "-t", "30",
				"-r", sim("nssize:16m "+tc.keys), "--output-format", "json")
			if r.code != exitFailed {
				t.Fatalf("exit %d, want %d: %s", r.code, exitFailed, r.stderr)
			}
			if r.wall > 15*time.Second {
				t.Errorf("a failed device took %v to end the run", r.wall)
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "SIGSEGV") {
				t.Fatalf("crash output on stderr:\n%s", r.stderr)
			}
			d := decodeDoc(t, r.stdout)
			if !strings.HasPrefix(d.Status, "device_failed") || !strings.Contains(d.Error, tc.why) {
				t.Errorf("status %q error %q", d.Status, d.Error)
			}
			if d.Total.All.IOs == 0 {
				t.Error("no partial results before the failure")
			}
		})
	}
}

// TestE2EZipfSkewOnAFile writes the same number of random blocks to a file with and
// without zipf, then counts with verify-image how many distinct blocks got written:
// zipf's hot set makes far fewer blocks distinct than uniform offsets do.
func TestE2EZipfSkewOnAFile(t *testing.T) {
	distinct := func(extra ...string) uint64 {
		file := filepath.Join(t.TempDir(), "zipf.dat")
		args := append([]string{"-q", "16", "-o", "4k", "-w", "randwrite", "-d", "4000", "-t", "60", "--verify",
			"--size", "64m", "--output-format", "json", file}, extra...)
		r := runBinary(t, args...)
		if r.code != 0 {
			if strings.Contains(r.stderr, "io_uring") && (strings.Contains(r.stderr, "not supported") || strings.Contains(r.stderr, "disabled")) {
				t.Skipf("io_uring unavailable here: %s", r.stderr)
			}
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		d := decodeDoc(t, r.stdout)
		if d.Total.Write.IOs != 4000 {
			t.Fatalf("wrote %d blocks, want 4000", d.Total.Write.IOs)
		}
		lba := d.Devices[0].LBASize
		v := runBinary(t, "verify-image", "--seed", "1", "--lba-size", fmt.Sprint(lba), file)
		if v.code != 0 {
			t.Fatalf("verify-image exit %d: %s %s", v.code, v.stdout, v.stderr)
		}
		var blocks, verified, unwritten, mismatched uint64
		if _, err := fmt.Sscanf(v.stdout[strings.Index(v.stdout, ": ")+2:], "%d blocks of %d B: %d verified, %d unwritten, %d mismatched",
			&blocks, new(int), &verified, &unwritten, &mismatched); err != nil {
			t.Fatalf("verify-image output %q: %v", v.stdout, err)
		}
		// Each 4 KiB I/O covers 4096/lba blocks.
		return verified / uint64(4096/lba)
	}
	uniform := distinct()
	zipf := distinct("-F", "1.2")
	t.Logf("distinct 4 KiB slots written by 4000 random writes over 16384: uniform %d, zipf(1.2) %d", uniform, zipf)
	if uniform < 3000 || uniform > 4000 {
		t.Errorf("uniform wrote %d distinct slots, want about 3540 (16384 × (1 − e^(−4000/16384)))", uniform)
	}
	if zipf*2 > uniform {
		t.Errorf("zipf(1.2) wrote %d distinct slots, not clearly fewer than uniform's %d", zipf, uniform)
	}
}
