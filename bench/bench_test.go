//go:build linux

// Package bench_test runs the benchmark scripts in bench/ briefly, so that a renamed
// flag or JSON field breaks a test instead of the next benchmark someone runs. The
// numbers of these short runs mean nothing; the checks are that every row is there and
// every figure parses.
package bench_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needTools skips the test, saying why, when a program the scripts use is missing
// (`make test-tools` installs them on Debian).
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make test-tools installs it): %v", tool, err)
		}
	}
}

// diskDir is a temporary directory on a disk-backed file system that takes direct
// I/O: the script refuses tmpfs (direct I/O there measures memory), and both tools open
// the file with O_DIRECT, which some file systems (older overlayfs) refuse.
func diskDir(t *testing.T) string {
	t.Helper()
	for _, parent := range []string{os.TempDir(), "/var/tmp"} {
		var st syscall.Statfs_t
		if syscall.Statfs(parent, &st) != nil || st.Type == 0x01021994 /* TMPFS_MAGIC */ {
			continue
		}
		dir, err := os.MkdirTemp(parent, "uring-vs-fio-")
		if err != nil {
			continue
		}
		if directIO(filepath.Join(dir, "probe")) {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
		os.RemoveAll(dir)
	}
	t.Skip("no temporary directory on a disk-backed file system that takes O_DIRECT (tried TMPDIR and /var/tmp)")
	return ""
}

// directIO reports whether a 4 KiB O_DIRECT write to a new file at path works.
func directIO(path string) bool {
	fd, err := syscall.Open(path, syscall.O_CREAT|syscall.O_WRONLY|syscall.O_DIRECT, 0o600)
	if err != nil {
		return false
	}
	defer syscall.Close(fd)
	buf, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON) // page-aligned
	if err != nil {
		return false
	}
	defer syscall.Munmap(buf)
	n, err := syscall.Write(fd, buf)
	return err == nil && n == len(buf)
}

var (
	tableRow = regexp.MustCompile(`^  (fio|fio-fixed|nvmeperf) +(\S+) +(\S+) +(\S+) +(\S+) +(\S+)$`)
	ratioRow = regexp.MustCompile(`^  nvmeperf/fio +IOPS (\S+)x +CPU per I/O (\S+)x +thread CPU per I/O (\S+)x$`)
	verdict  = regexp.MustCompile(`^  QD (\d+) +IOPS (\S+)x +CPU per I/O (\S+)x +floor (\S+)x +(met|not met: .+)$`)
)

// TestUringVsFio runs bench/uring_vs_fio.sh at two depths, one short round, on a small
// file, and checks its tables: fio's and nvmeperf's rows with positive figures, the
// ratios, and a verdict per depth.
func TestUringVsFio(t *testing.T) {
	needTools(t, "fio", "python3", "/usr/bin/time", "taskset", "go")
	dir := diskDir(t)
	cmd := exec.Command("./uring_vs_fio.sh")
	cmd.Env = append(os.Environ(),
		"BENCH_FILE="+filepath.Join(dir, "bench.dat"), "SIZE_MB=16", "DEPTHS=1 8",
		"ROUNDS=1", "SECONDS_EACH=1", "FIO_FIXED=0")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("uring_vs_fio.sh failed after %v: %v\n%s", time.Since(start), err, out)
	}
	rows, ratios := map[string]int{}, 0
	verdicts := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if m := tableRow.FindStringSubmatch(line); m != nil {
			for _, f := range m[2:] {
				v, err := strconv.ParseFloat(f, 64)
				if err != nil || v < 0 {
					t.Errorf("row %q: figure %q is not a non-negative number", line, f)
				}
			}
			if iops, _ := strconv.ParseFloat(m[2], 64); iops <= 0 {
				t.Errorf("row %q: no IOPS", line)
			}
			if cpu, _ := strconv.ParseFloat(m[3], 64); cpu <= 0 {
				t.Errorf("row %q: no CPU per I/O", line)
			}
			rows[m[1]]++
		}
		if m := ratioRow.FindStringSubmatch(line); m != nil {
			for _, f := range m[1:] {
				if v, err := strconv.ParseFloat(f, 64); err != nil || v <= 0 {
					t.Errorf("ratio line %q: %q is not a positive number", line, f)
				}
			}
			ratios++
		}
		if m := verdict.FindStringSubmatch(line); m != nil {
			verdicts[m[1]] = true
		}
	}
	if rows["fio"] != 2 || rows["nvmeperf"] != 2 || rows["fio-fixed"] != 0 {
		t.Errorf("want one fio and one nvmeperf row per depth (2 each) and no fio-fixed row (FIO_FIXED=0), got %v", rows)
	}
	if ratios != 2 {
		t.Errorf("want a nvmeperf/fio ratio line per depth (2), got %d", ratios)
	}
	if !verdicts["1"] || !verdicts["8"] {
		t.Errorf("want a verdict for QD 1 and QD 8, got %v", verdicts)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

var (
	overheadRow = regexp.MustCompile(`^(fio --ioengine=null|nvmeperf sim null, inline \(one core\)|nvmeperf sim null, threaded) +(\S+) +(\S+)x +(\S+) +(\S+)$`)
	targetLine  = regexp.MustCompile(`^target: (inline|threaded) >= \dx fio: (met|not met) \((\S+)x\)$`)
)

// TestToolOverhead runs bench/tool_overhead.sh for one short round and checks its
// table: fio's, the inline and the threaded rows with positive IOPS and CPU figures,
// and a target line for each mode.
func TestToolOverhead(t *testing.T) {
	needTools(t, "fio", "python3", "/usr/bin/time", "taskset", "go")
	cmd := exec.Command("./tool_overhead.sh")
	cmd.Env = append(os.Environ(), "ROUNDS=1", "SECONDS_EACH=1", "DEPTH=32")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tool_overhead.sh failed: %v\n%s", err, out)
	}
	rows, targets := map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if m := overheadRow.FindStringSubmatch(line); m != nil {
			for _, f := range m[2:5] {
				if v, err := strconv.ParseFloat(f, 64); err != nil || v <= 0 {
					t.Errorf("row %q: %q is not a positive number", line, f)
				}
			}
			if m[1] != "fio --ioengine=null" {
				if v, err := strconv.ParseFloat(m[5], 64); err != nil || v <= 0 {
					t.Errorf("row %q: no worker CPU per I/O", line)
				}
			}
			rows[m[1]] = true
		}
		if m := targetLine.FindStringSubmatch(line); m != nil {
			targets[m[1]] = true
		}
	}
	if len(rows) != 3 || !targets["inline"] || !targets["threaded"] {
		t.Errorf("want the fio, inline and threaded rows and both target lines; got rows %v, targets %v\n%s", rows, targets, out)
	}
}

// TestUringVsFioLeavesOtherFilesAlone: BENCH_FILE may name anything; the script writes
// only a test file it created. A file of another size that it did not mark, a
// directory or a device is refused with the reason, and left as it was.
func TestUringVsFioLeavesOtherFilesAlone(t *testing.T) {
	needTools(t, "fio", "python3", "/usr/bin/time", "taskset")
	dir := t.TempDir()
	userFile := filepath.Join(dir, "precious.dat")
	content := []byte(strings.Repeat("user data ", 500))
	if err := os.WriteFile(userFile, content, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{userFile, "was not written by this script"},
		{dir, "is not a regular file"},
		{"/dev/null", "is not a regular file"},
	} {
		cmd := exec.Command("./uring_vs_fio.sh")
		cmd.Env = append(os.Environ(), "BENCH_FILE="+tc.path, "SIZE_MB=16", "DEPTHS=1", "ROUNDS=1", "SECONDS_EACH=1",
			"NVMEPERF=/nonexistent-nvmeperf") // never reached: the refusal comes first
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), tc.path) {
			t.Errorf("BENCH_FILE=%s: err %v, output %q; want a refusal naming the path and saying %q", tc.path, err, out, tc.want)
		}
	}
	if got, err := os.ReadFile(userFile); err != nil || string(got) != string(content) {
		t.Errorf("the user's file changed: %d bytes, %v", len(got), err)
	}
	if _, err := os.Stat(userFile + ".nvmeperf-bench"); err == nil {
		t.Error("the script marked the user's file as its own")
	}
}
