package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/pcie"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// corpusLine is one spdk_nvme_perf command line of testdata/spdk_cmdlines.txt.
type corpusLine struct {
	source, expect string
	args           []string
}

func readCorpus(t *testing.T) []corpusLine {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "spdk_cmdlines.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 {
			t.Fatalf("corpus line %q: want SOURCE | EXPECT | COMMAND", line)
		}
		cmd := parts[2]
		if i := strings.Index(cmd, " # vars:"); i >= 0 {
			cmd = cmd[:i]
		}
		words, err := shellWords(cmd)
		if err != nil {
			t.Fatalf("corpus line %q: %v", line, err)
		}
		out = append(out, corpusLine{strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1]), words})
	}
	return out
}

// shellWords splits a command line as sh does for quotes (no expansion).
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote")
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// rewriteForSim applies the corpus's documented rewrite rules (see the file header).
func rewriteForSim(t *testing.T, args []string, cores []int) []string {
	t.Helper()
	out := []string{}
	hasTRID := false
	for i := 1; i < len(args); i++ { // rule 1: drop the program
		a := args[i]
		if i+1 < len(args) {
			switch a {
			case "-r": // rule 2
				out = append(out, "-r", "trtype:sim lbasize:512 mdts:8")
				hasTRID = true
				i++
				continue
			case "-t": // rule 3
				out = append(out, "-t", "0.2")
				i++
				continue
			case "-a":
				out = append(out, "-a", "0.1")
				i++
				continue
			case "-c": // rule 4
				want, err := parseCores(args[i+1])
				if err != nil {
					t.Fatalf("corpus -c %s: %v", args[i+1], err)
				}
				n := min(len(want), len(cores))
				out = append(out, "-c", formatCores(cores[:n]))
				i++
				continue
			}
		}
		out = append(out, a)
	}
	if !hasTRID {
		out = append(out, "-r", "trtype:sim lbasize:512 mdts:8")
	}
	return out
}

var totalRow = regexp.MustCompile(`(?m)^Total\s+:\s+[0-9.]+\s+[0-9.]+`)

// TestSPDKCommandLines runs real spdk_nvme_perf command lines from SPDK's tests and
// docs against the simulated controller: each exits 0 with SPDK's Total row, or with
// its documented notice or refusal.
func TestSPDKCommandLines(t *testing.T) {
	corpus := readCorpus(t)
	if len(corpus) < 25 {
		t.Fatalf("corpus has %d command lines, want at least 25", len(corpus))
	}
	cores := allowedCPUs()
	flags := newApp([]string{"nvmeperf"}, nil, nil).rootCommand().Flags()
	for _, c := range corpus {
		t.Run(c.source, func(t *testing.T) {
			kind, want, _ := strings.Cut(c.expect, ":")
			if kind == "needs" {
				if flags.Lookup(want) == nil {
					t.Skipf("needs --%s, which lands with another change", want)
				}
				kind = "ok"
			}
			args := rewriteForSim(t, c.args, cores)
			// The binary, not run(): workers pin their threads, and an in-process run
			// would leave the test's threads pinned to one core.
			r := runBinary(t, args...)
			code, out, errOut := r.code, r.stdout, r.stderr
			switch kind {
			case "ok", "notice":
				if code != 0 {
					t.Fatalf("nvmeperf %q: exit %d\nstderr: %s", args, code, errOut)
				}
				if !totalRow.MatchString(out) {
					t.Errorf("nvmeperf %q: no Total row:\n%s", args, out)
				}
				if !strings.HasPrefix(out, "Initializing NVMe Controllers\n") || !strings.Contains(out, "Initialization complete. Launching workers.\n") {
					t.Errorf("nvmeperf %q: no SPDK preamble:\n%s", args, out)
				}
				if kind == "notice" && !strings.Contains(errOut, want) {
					t.Errorf("nvmeperf %q: stderr lacks the notice %q:\n%s", args, want, errOut)
				}
				if kind == "ok" && strings.Contains(errOut, "does not apply") {
					t.Errorf("nvmeperf %q: unexpected notice: %s", args, errOut)
				}
			case "refused":
				if code != exitUsage || !strings.Contains(errOut, want) {
					t.Fatalf("nvmeperf %q: exit %d, stderr %q; want exit 2 naming %q", args, code, errOut, want)
				}
			default:
				t.Fatalf("unknown expectation %q", c.expect)
			}
		})
	}
}

// TestSPDKOptionTable checks that every option of spdk_nvme_perf's table has a flag
// in nvmeperf (or is left to the change that implements it) and a row in
// docs/spdk-compat.md with its treatment.
func TestSPDKOptionTable(t *testing.T) {
	flags := newApp([]string{"nvmeperf"}, nil, nil).rootCommand().Flags()
	docBytes, err := os.ReadFile(filepath.Join("..", "..", "docs", "spdk-compat.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(docBytes)
	seen := map[string]bool{}
	for _, o := range spdkOptions {
		if seen[o.long] {
			t.Errorf("--%s listed twice", o.long)
		}
		seen[o.long] = true
		row := "`--" + o.long + "`"
		if !strings.Contains(doc, row) {
			t.Errorf("docs/spdk-compat.md has no row for %s", row)
		}
		if o.treat == otherBranch || o.long == "help" {
			continue
		}
		f := flags.Lookup(o.long)
		if f == nil {
			t.Errorf("--%s: no such flag", o.long)
			continue
		}
		if o.short != "" && f.Shorthand != o.short {
			t.Errorf("--%s: shorthand %q, want -%s", o.long, f.Shorthand, o.short)
		}
		if takesValue := f.NoOptDefVal == ""; takesValue != (o.value != "") && o.long != "continue-on-error" {
			t.Errorf("--%s: takes a value %v, spdk_nvme_perf's %v", o.long, takesValue, o.value != "")
		}
	}
}

func TestNormalizeSPDKSpellings(t *testing.T) {
	f := newApp([]string{"nvmeperf"}, nil, nil).rootCommand().Flags()
	cases := []struct {
		in, want []string
	}{
		{[]string{"-Q", "100", "-q", "1"}, []string{"-Q", "--continue-on-error-count=100", "-q", "1"}},
		{[]string{"-Q100"}, []string{"-Q", "--continue-on-error-count=100"}},
		{[]string{"-Q", "-r", "x"}, []string{"-Q", "--continue-on-error-count=1", "-r", "x"}},
		{[]string{"-q", "1", "-Q"}, []string{"-q", "1", "-Q", "--continue-on-error-count=1"}},
		{[]string{"--continue-on-error=7"}, []string{"--continue-on-error", "--continue-on-error-count=7"}},
		{[]string{"-LQ", "3"}, []string{"-L", "-Q", "--continue-on-error-count=3"}},
		{[]string{"-d", "50%"}, []string{"--number-ios-percent=50"}},
		{[]string{"-d", "500"}, []string{"-d", "500"}},
		{[]string{"--transport-stat"}, []string{"--transport-stats"}},
		{[]string{"-r", "-Q", "-Q", "2"}, []string{"-r", "-Q", "-Q", "--continue-on-error-count=2"}}, // -r's value is not -Q
		{[]string{"-HI", "-q", "4"}, []string{"-HI", "-q", "4"}},
	}
	for _, c := range cases {
		got, err := normalizeArgs(f, c.in)
		if err != nil || strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%q: got %q (%v), want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range [][]string{{"-Q", "100x"}, {"-Q", "0"}, {"-Q", "/dev/nvme0n1"}, {"-d", "0%"}, {"-d", "x%"}} {
		if _, err := normalizeArgs(f, bad); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%q: error %v, want a usage error naming %s", bad, err, bad[0])
		}
	}
}

// TestQuietCountIsACount is issue 11's misreading: -Q 100 must not make "100" a file
// target; it logs every 100th error.
func TestQuietCountIsACount(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	code, out, errOut := runCLI(t, "-q", "16", "-o", "4k", "-w", "randread", "-d", "2000", "-t", "30", "-Q", "100",
		"-r", "trtype:sim nssize:16m faillba:0-99 failstatus:read-error", "--output-format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "100")); err == nil {
		t.Fatal("-Q 100 created a file named 100")
	}
	var d struct {
		Devices []struct{ Name string }
		Total   struct{ All struct{ Errors uint64 } }
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Devices) != 1 || d.Total.All.Errors == 0 {
		t.Fatalf("devices %v, errors %d: want only the sim, with errors", d.Devices, d.Total.All.Errors)
	}
	logged := uint64(strings.Count(errOut, "I/O error:"))
	if want := (d.Total.All.Errors + 99) / 100; logged < want || logged > want+1 {
		t.Errorf("%d errors logged for %d I/O errors with -Q 100, want about %d", logged, d.Total.All.Errors, want)
	}
	if d.Total.All.Errors > 100 && !strings.Contains(errOut, "Message suppressed 99 times: ") {
		t.Errorf("no suppression count: %s", errOut)
	}
}

func TestNumberIOsPercent(t *testing.T) {
	// 16 MiB namespace, 4 KiB I/Os: 25% is 1024 I/Os.
	code, out, errOut := runCLI(t, "-q", "8", "-o", "4k", "-w", "randread", "-t", "60", "-d", "25%",
		"-r", "trtype:sim nssize:16m")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "number_ios for namespace SIM (embedded) NSID 1 set to 1024 (25% of namespace size)") {
		t.Errorf("no number_ios line:\n%s", out)
	}
	code, out, _ = runCLI(t, "-q", "8", "-o", "4k", "-w", "randread", "-t", "60", "-d", "25%",
		"-r", "trtype:sim nssize:16m", "--output-format", "json")
	var d struct {
		Total struct{ All struct{ IOs uint64 } }
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != 0 || d.Total.All.IOs != 1024 {
		t.Errorf("exit %d, %d I/Os (%v), want 1024", code, d.Total.All.IOs, err)
	}
}

func TestCompatOptionsRun(t *testing.T) {
	sim := "trtype:sim nssize:16m"
	t.Run("qpairs above depth", func(t *testing.T) {
		code, out, errOut := runCLI(t, "-q", "1", "-P", "2", "-o", "4k", "-w", "randread", "-t", "0.2", "-r", sim, "--output-format", "json")
		var d struct {
			Jobs []struct {
				QPairs         int
				TransportStats map[string]uint64 `json:"transport_stats"`
			}
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil || code != 0 {
			t.Fatalf("exit %d (%v): %s", code, err, errOut)
		}
		if d.Jobs[0].QPairs != 2 || d.Jobs[0].TransportStats["completions"] == 0 || d.Jobs[0].TransportStats["polls"] == 0 {
			t.Errorf("jobs %+v", d.Jobs)
		}
	})
	t.Run("transport stats text", func(t *testing.T) {
		code, out, errOut := runCLI(t, "-q", "4", "-o", "4k", "-w", "read", "-t", "0.2", "-r", sim, "--transport-stats")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"lcore ", "ns SIM (embedded) NSID 1 statistics:", "PCIE transport:", "\tpolls:", "\tidle_polls:", "\tsq_mmio_doorbell_updates:", "\tqueued_requests:"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
		if strings.Index(out, "PCIE transport:") > strings.Index(out, "Device Information") {
			t.Error("transport statistics after the table; SPDK prints them before")
		}
	})
	t.Run("unused qpairs, no shutdown, fua, every core, cpu usage", func(t *testing.T) {
		code, out, errOut := runCLI(t, "-q", "4", "-o", "4k", "-w", "randwrite", "-t", "0.2", "-r", sim, "-r", sim,
			"-U", "3", "-N", "--fua", "--use-every-core", "-m", "-c", formatCores(allowedCPUs()[:1]))
		if code != 0 || !totalRow.MatchString(out) {
			t.Fatalf("exit %d: %s\n%s", code, errOut, out)
		}
		// one core, two namespaces: with --use-every-core the core drives both.
		if strings.Count(out, "Associating ") != 2 || !strings.Contains(errOut, "Core(s):") || !strings.Contains(errOut, "% Busy") {
			t.Errorf("stdout:\n%s\nstderr:\n%s", out, errOut)
		}
	})
	t.Run("unused qpairs beyond the controller", func(t *testing.T) {
		code, _, errOut := runCLI(t, "-q", "4", "-o", "4k", "-w", "read", "-t", "0.2", "-r", "trtype:sim ioqueues:2", "-U", "5")
		if code != exitUsage || !strings.Contains(errOut, "-U 5") {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	t.Run("allowed pci", func(t *testing.T) {
		code, _, errOut := runCLI(t, "-q", "4", "-o", "4k", "-w", "read", "-t", "0.2", "-b", "0000:d8:00.0", "-r", "trtype:PCIe traddr:0000:d9:00.0")
		if code != exitUsage || !strings.Contains(errOut, "-b allowed") {
			t.Errorf("exit %d: %s", code, errOut)
		}
		code, _, errOut = runCLI(t, "-q", "4", "-o", "4k", "-w", "read", "-t", "0.2", "-b", "d8:00")
		if code != exitUsage || !strings.Contains(errOut, `-b "d8:00"`) {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	t.Run("fua on a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "f")
		code, _, errOut := runCLI(t, "-q", "4", "-o", "4k", "-w", "read", "-t", "0.2", "--fua", "--size", "1m", path)
		if code != exitUsage || !strings.Contains(errOut, "--fua") {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	t.Run("-M with read", func(t *testing.T) {
		_, _, errOut := runCLI(t, "-q", "4", "-o", "4k", "-w", "read", "-M", "30", "-t", "0.2", "-r", sim)
		if !strings.Contains(errOut, "Ignoring -M (--rwmixread) option") {
			t.Errorf("no -M notice: %s", errOut)
		}
	})
}

func TestOutputTextAndJSON(t *testing.T) {
	dir := t.TempDir()
	for _, kind := range []string{"json", "fio-json"} {
		path := filepath.Join(dir, kind)
		code, out, errOut := runCLI(t, "-q", "4", "-o", "4k", "-w", "randrw", "-M", "50", "-t", "0.2", "-r", "trtype:sim nssize:16m",
			"--output-format", "text,"+kind, "--json-output", path)
		if code != 0 || !totalRow.MatchString(out) {
			t.Fatalf("%s: exit %d: %s\n%s", kind, code, errOut, out)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		key := "schema"
		if kind == "fio-json" {
			key = "fio version"
		}
		if _, ok := d[key]; !ok {
			t.Errorf("%s document has no %q", kind, key)
		}
	}
	code, _, errOut := runCLI(t, "-q", "4", "-o", "4k", "-w", "read", "-t", "0.2", "--output-format", "text,json")
	if code != exitUsage || !strings.Contains(errOut, "--json-output") {
		t.Errorf("text,json without a file: exit %d: %s", code, errOut)
	}
	code, out, errOut := runCLI(t, "-q", "4", "-o", "4k", "-w", "read", "-t", "0.2", "-r", "trtype:sim nssize:16m", "--output-format", "fio-json")
	var fd struct {
		Jobs []struct {
			Read struct {
				TotalIOs uint64 `json:"total_ios"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(out), &fd); err != nil || code != 0 || len(fd.Jobs) != 1 || fd.Jobs[0].Read.TotalIOs == 0 {
		t.Errorf("fio-json: exit %d (%v) %s", code, err, errOut)
	}
}

func TestCLIManners(t *testing.T) {
	code, out, errOut := runCLI(t, "lsit")
	if code != exitUsage || !strings.Contains(errOut, `unknown command "lsit"`) || !strings.Contains(errOut, "did you mean list") || out != "" {
		t.Errorf("lsit: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "lsit", "-q", "1", "-o", "4k", "-w", "read", "-t", "1")
	if code != exitUsage || !strings.Contains(errOut, "did you mean list") {
		t.Errorf("lsit with flags: exit %d, stderr %q", code, errOut)
	}
	code, out, _ = runCLI(t, "--version")
	if code != 0 || !strings.Contains(out, "module github.com/nvmeperf/nvmeperf") || !strings.Contains(out, "commit ") {
		t.Errorf("--version: %q", out)
	}
	code, out, _ = runCLI(t, "-v")
	if code != 0 || !strings.Contains(out, "--io-depth") {
		t.Errorf("-v (help-full): exit %d %q", code, out)
	}
	code, out, _ = runCLI(t, "__complete", "-w", "")
	if code != 0 || !strings.Contains(out, "randrw") {
		t.Errorf("completion of -w: %q", out)
	}
	code, out, _ = runCLI(t, "__complete", "--output-format", "")
	if code != 0 || !strings.Contains(out, "fio-json") {
		t.Errorf("completion of --output-format: %q", out)
	}
	code, out, _ = runCLI(t, "__complete", "-r", "")
	if code != 0 || !strings.Contains(out, "trtype:sim") {
		t.Errorf("completion of -r: %q", out)
	}
	code, out, _ = runCLI(t, "__complete", "-r", "trtype:sim ")
	if code != 0 || !strings.Contains(out, "trtype:sim nssize:") {
		t.Errorf("completion of -r keys: %q", out)
	}
	dir := t.TempDir()
	code, _, errOut = runCLI(t, "gen-man", dir)
	if code != 0 {
		t.Fatalf("gen-man: exit %d %s", code, errOut)
	}
	page, err := os.ReadFile(filepath.Join(dir, "nvmeperf.1"))
	if err != nil || !strings.Contains(string(page), "--io-depth") {
		t.Errorf("man page: %v\n%.300s", err, page)
	}
	code, out, errOut = runCLI(t, "list", "--output-format", "json")
	if code != 0 {
		t.Fatalf("list json: exit %d %s", code, errOut)
	}
	var ld struct {
		Schema      string
		Controllers []map[string]any
	}
	if err := json.Unmarshal([]byte(out), &ld); err != nil || ld.Schema != listSchema || ld.Controllers == nil {
		t.Errorf("list json %q: %v", out, err)
	}
}

// infoTarget is a target that only describes itself, for the preamble.
type infoTarget struct{ info target.Info }

func (t infoTarget) Info() target.Info { return t.info }
func (t infoTarget) OpenQueue(target.QueueConfig) (target.Queue, error) {
	return nil, fmt.Errorf("infoTarget: no I/O")
}
func (t infoTarget) Close() error { return nil }

// TestPreambleAsSPDKPrintsIt checks the start-up lines against SPDK's format: one
// Attached line per controller with the PCI IDs for PCIe, one Associating line per
// (core, namespace) in the engine's assignment order, none Attached for kernel devices.
func TestPreambleAsSPDKPrintsIt(t *testing.T) {
	var out bytes.Buffer
	a := newApp([]string{"nvmeperf"}, &out, &out)
	a.probe = func() ([]pcie.Controller, error) {
		return []pcie.Controller{{Address: "0000:04:00.0", VendorID: 0x8086, DeviceID: 0x0a54}}, nil
	}
	targets := []target.Target{
		infoTarget{target.Info{Name: "PCIE (0000:04:00.0) NSID 1", Transport: "PCIe"}},
		infoTarget{target.Info{Name: "PCIE (0000:04:00.0) NSID 2", Transport: "PCIe"}},
		infoTarget{target.Info{Name: "/dev/nvme1n1", Transport: "io_uring"}},
	}
	p := &plan{cores: []int{2, 5}}
	a.preamble(targets, p, assignments(2, 3, false), nil)
	want := `Initializing NVMe Controllers
Attached to NVMe Controller at PCIE (0000:04:00.0) [8086:0a54]
Associating PCIE (0000:04:00.0) NSID 1 with lcore 2
Associating PCIE (0000:04:00.0) NSID 2 with lcore 5
Associating /dev/nvme1n1 with lcore 2
Initialization complete. Launching workers.
`
	if out.String() != want {
		t.Errorf("preamble:\n%s\nwant:\n%s", out.String(), want)
	}
}
