package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/pcie"
)

// runCLI runs the command in-process and returns its exit status, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"nvmeperf"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// TestFlagValidation checks that every bad flag value is a usage error (exit 2) whose
// message names the flag, the value and what is accepted — before any device opens.
func TestFlagValidation(t *testing.T) {
	base := []string{"-q", "8", "-o", "4k", "-w", "randread", "-t", "1"}
	with := func(extra ...string) []string {
		// later flags override earlier ones
		return append(append([]string{}, base...), extra...)
	}
	cases := []struct {
		name string
		args []string
		want []string // substrings the message must contain
	}{
		{"missing -q", []string{"-o", "4k", "-w", "read", "-t", "1"}, []string{"-q", "required"}},
		{"missing -o", []string{"-q", "1", "-w", "read", "-t", "1"}, []string{"-o", "required"}},
		{"missing -w", []string{"-q", "1", "-o", "4k", "-t", "1"}, []string{"-w", "required", "randrw"}},
		{"missing -t", []string{"-q", "1", "-o", "4k", "-w", "read"}, []string{"-t", "required"}},
		{"depth zero", with("-q", "0"), []string{"-q 0", "1..65535"}},
		{"depth huge", with("-q", "70000"), []string{"-q 70000", "1..65535"}},
		{"depth not a number", with("-q", "lots"), []string{"lots", "-q"}},
		{"size garbage", with("-o", "4x"), []string{"-o \"4x\"", "4k"}},
		{"size unaligned", with("-o", "1000"), []string{"-o 1000", "multiple of 512"}},
		{"size too big", with("-o", "1g"), []string{"-o 1g", "64m"}},
		{"bad pattern", with("-w", "randomread"), []string{"-w \"randomread\"", "randread"}},
		{"mixed without -M", with("-w", "randrw"), []string{"-M", "required", "randrw"}},
		{"-M out of range", with("-w", "rw", "-M", "101"), []string{"-M 101", "0..100"}},
		{"negative time", with("-t", "-1"), []string{"-t -1", "more than 0 and at most 31536000"}},
		{"zero time", with("-t", "0"), []string{"-t 0", "more than 0"}},
		{"negative warm-up", with("-a", "-2"), []string{"-a -2", "from 0 to 86400"}},
		{"zero -d", with("-d", "0"), []string{"-d 0", "at least 1"}},
		{"bad core mask", with("-c", "0xZ"), []string{"-c \"0xZ\"", "hex"}},
		{"bad core list", with("-c", "[3-1]"), []string{"-c \"[3-1]\"", "list"}},
		{"unavailable core", with("-c", "[1000]"), []string{"-c [1000]", "core 1000", "available"}},
		{"qpairs zero", with("-P", "0"), []string{"-P 0", "1..1024"}},
		{"queue size", with("--io-queue-size", "1"), []string{"--io-queue-size 1", "2..65536"}},
		{"negative -C", with("-C", "-1"), []string{"-C -1", "0 (no limit)"}},
		{"negative zipf", with("-F", "-1"), []string{"-F -1", "positive"}},
		{"zipf on sequential", with("-w", "read", "-F", "1.2"), []string{"-F 1.2", "random patterns"}},
		{"alignment not power of two", with("-A", "48"), []string{"-A 48", "power of two"}},
		{"-LLL", with("-LLL"), []string{"-L given 3 times", "-LL"}},
		{"output format", with("--output-format", "xml"), []string{"--output-format \"xml\"", "text or json"}},
		{"doorbell", with("--doorbell", "sometimes"), []string{"--doorbell \"sometimes\"", "per-poll", "per-command"}},
		{"verify both", with("--verify", "--verify-read"), []string{"--verify", "--verify-read", "pick one"}},
		{"verify-read with writes", with("-w", "randwrite", "--verify-read"), []string{"--verify-read", "-w randwrite"}},
		{"bad trid", with("-r", "trtype:PCIe traddr:0000:4:00"), []string{"-r", "traddr", "PCI address"}},
		{"unknown trid key", with("-r", "trtpye:PCIe"), []string{"-r", "unknown key", "trtpye"}},
		{"unknown flag", with("--frobnicate"), []string{"frobnicate"}},
		{"bad label", with("--label", "novalue"), []string{"--label \"novalue\"", "key=value"}},
		{"bad --size", with("--size", "big"), []string{"--size \"big\"", "1m"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, errOut)
			}
			if out != "" {
				t.Errorf("usage error wrote to stdout: %q", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("message %q does not mention %q", errOut, w)
				}
			}
			if strings.Contains(errOut, "goroutine ") || strings.Contains(errOut, "panic") {
				t.Errorf("stack trace in usage error: %s", errOut)
			}
		})
	}
}

func TestNumberOfIOsWithoutTime(t *testing.T) {
	code, out, errOut := runCLI(t, "-q", "4", "-o", "4k", "-w", "randwrite", "-d", "100", "-r", "trtype:sim nssize:8m", "--output-format", "json")
	if code != 0 {
		t.Fatalf("-d without -t: exit %d: %s", code, errOut)
	}
	var doc struct {
		Total struct{ All struct{ IOs uint64 } }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Total.All.IOs != 100 {
		t.Fatalf("ios %d (%v)", doc.Total.All.IOs, err)
	}
}

func TestUsageErrorWithJSONStillGivesADocument(t *testing.T) {
	code, out, _ := runCLI(t, "-q", "0", "-o", "4k", "-w", "read", "-t", "1", "--output-format", "json")
	if code != exitUsage {
		t.Fatalf("exit %d", code)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, out)
	}
	if s, _ := doc["status"].(string); !strings.HasPrefix(s, "error: usage: -q 0") {
		t.Errorf("status %q", s)
	}
}

func TestParseCores(t *testing.T) {
	cases := map[string][]int{
		"0x1": {0}, "0x3": {0, 1}, "3": {0, 1}, "0xA": {1, 3}, "[0,2-3]": {0, 2, 3}, "1,0": {0, 1}, "[5]": {5},
		"0x100": {8},
	}
	for in, want := range cases {
		got, err := parseCores(in)
		if err != nil || len(got) != len(want) {
			t.Errorf("parseCores(%q) = %v, %v; want %v", in, got, err, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("parseCores(%q) = %v, want %v", in, got, want)
			}
		}
	}
	if _, err := parseCores("0x0"); err == nil {
		t.Error("an empty mask was accepted")
	}
}

func TestParseSize(t *testing.T) {
	cases := map[string]int64{"512": 512, "4k": 4096, "4K": 4096, "128k": 128 << 10, "1m": 1 << 20, "1MiB": 1 << 20, "2g": 2 << 30}
	for in, want := range cases {
		if got, err := parseSize("-o", in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "k", "-4k", "4kk", "1.5m", "9999999999999999999"} {
		if _, err := parseSize("-o", bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func TestDefaultTargets(t *testing.T) {
	newTestApp := func(ctrls []pcie.Controller) (*app, *bytes.Buffer) {
		var errb bytes.Buffer
		a := newApp([]string{"nvmeperf"}, &bytes.Buffer{}, &errb)
		a.probe = func() ([]pcie.Controller, error) { return ctrls, nil }
		return a, &errb
	}
	// Kernel-bound NVMe only: stop and explain both ways forward.
	a, _ := newTestApp([]pcie.Controller{{Address: "0000:04:00.0", Driver: "nvme", BlockDevices: []string{"nvme0n1"}}})
	_, err := a.defaultTargets()
	if err == nil {
		t.Fatal("kernel-bound controllers were used without being named")
	}
	for _, want := range []string{"0000:04:00.0", "driver nvme", "/dev/nvme0n1", "scripts/setup.sh", "nvmeperf ... /dev/nvme0n1", "trtype:sim"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q:\n%v", want, err)
		}
	}
	// Controllers bound for userspace are used, each by its PCIe transport ID.
	a, _ = newTestApp([]pcie.Controller{
		{Address: "0000:04:00.0", Driver: "vfio-pci"}, {Address: "0000:05:00.0", Driver: "nvme"}, {Address: "0000:06:00.0", Driver: "uio_pci_generic"},
	})
	ids, err := a.defaultTargets()
	if err != nil || len(ids) != 2 || ids[0].TrAddr != "0000:04:00.0" || ids[1].TrAddr != "0000:06:00.0" {
		t.Fatalf("userspace controllers: %v %v", ids, err)
	}
	// No NVMe at all: the simulator, said on stderr.
	a, errb := newTestApp(nil)
	ids, err = a.defaultTargets()
	if err != nil || len(ids) != 1 || ids[0].Type != "sim" || !strings.Contains(errb.String(), "simulated controller") {
		t.Fatalf("no NVMe: %v %v %q", ids, err, errb.String())
	}
}
