package main

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver"
	simdev "github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/serve"
)

// tcpTarget serves a simulated namespace (sim keys) with `nvmeperf serve`'s library on a
// loopback port and returns the server and a trid naming it (subnqn included unless
// discovery is wanted).
func tcpTarget(t *testing.T, simKeys string, cfg serve.Config, discovery bool) (*serve.Server, string) {
	s, _, id := serveSim(t, simKeys, cfg, discovery)
	return s, id
}

// serveSim serves a simulated controller's namespaces over NVMe/TCP on a loopback
// port for the test's lifetime, and returns the server, the simulated controller
// (whose counters tell when the host's I/O has begun) and the host's transport ID
// (without subnqn for discovery).
func serveSim(t *testing.T, simKeys string, cfg serve.Config, discovery bool) (*serve.Server, *simdev.Controller, string) {
	t.Helper()
	ts, c, err := driver.OpenTRID("trtype:sim "+simKeys, driver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, x := range ts {
			x.Close()
		}
	})
	cfg.Namespaces = ts
	s, err := serve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	id := "trtype:TCP adrfam:IPv4 traddr:" + host + " trsvcid:" + port
	if !discovery {
		id += " subnqn:" + serve.DefaultNQN
	}
	return s, c.Sim, id
}

// TestE2ETCPPatternsVerify runs every pattern with --verify through the NVMe/TCP host
// against `nvmeperf serve` over a simulated namespace: in-capsule and R2T writes,
// transfers above MAXH2CDATA and above MDTS (split), digests, several workers and queue
// pairs, discovery.
func TestE2ETCPPatternsVerify(t *testing.T) {
	_, id := tcpTarget(t, "nssize:16m store:mem", serve.Config{InCapsuleData: 4096, MaxH2CData: 16 << 10, MaxTransfer: 64 << 10}, false)
	_, discID := tcpTarget(t, "nssize:8m store:mem", serve.Config{}, true)
	cores := allowedCPUs()
	twoCores := "0x1"
	if len(cores) >= 2 {
		twoCores = "[" + itoa(cores[0]) + "," + itoa(cores[1]) + "]"
	} else if len(cores) == 1 {
		twoCores = "[" + itoa(cores[0]) + "]"
	}
	runs := []struct {
		name string
		args []string
	}{
		// Write-only runs check nothing themselves: the read runs after them verify, in
		// another process, what they wrote.
		{"write 4k in capsule", []string{"-w", "write", "-o", "4k", "-q", "8", "-d", "4096", "-r", id}},
		{"read", []string{"-w", "read", "-o", "4k", "-q", "8", "-d", "2000", "-r", id}},
		{"randwrite 32k R2T, MAXH2CDATA chunks, digests", []string{"-w", "randwrite", "-o", "32k", "-q", "8", "-d", "500", "-H", "-I", "-r", id}},
		{"randread 32k digests", []string{"-w", "randread", "-o", "32k", "-q", "8", "-d", "500", "-H", "-I", "-r", id}},
		{"rw 256k over 64k MDTS", []string{"-w", "rw", "-M", "50", "-o", "256k", "-q", "4", "-d", "200", "-r", id}},
		{"randrw header digest, 2 workers x 2 qpairs", []string{"-w", "randrw", "-M", "50", "-o", "8k", "-q", "8", "-P", "2", "-c", twoCores, "--use-every-core", "-d", "1000", "-H", "-r", id}},
		{"randrw through discovery", []string{"-w", "randrw", "-M", "50", "-o", "4k", "-q", "8", "-d", "1000", "-I", "-r", discID}},
	}
	for _, tc := range runs {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-t", "60", "--verify", "--output-format", "json"}, tc.args...)
			r := runBinary(t, args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s\n%s", r.code, r.stderr, r.stdout)
			}
			d := decodeDoc(t, r.stdout)
			if d.Status != "ok" || d.Total.All.Errors != 0 {
				t.Fatalf("status %q, %d errors", d.Status, d.Total.All.Errors)
			}
			writeOnly := strings.Contains(tc.name, "write") && !strings.Contains(tc.name, "rw")
			if d.Total.Verify == nil || (d.Total.Verify.Checked == 0 && !writeOnly) || d.Total.Verify.Mismatched != 0 {
				t.Fatalf("verify totals %+v", d.Total.Verify)
			}
			if tc.args[len(tc.args)-1] == id && d.Total.Verify.Unwritten != 0 {
				t.Fatalf("%d unwritten blocks read after the fill", d.Total.Verify.Unwritten)
			}
			if !strings.Contains(r.stdout, `"TCP"`) {
				t.Errorf("no TCP transport in the JSON devices")
			}
		})
	}
}

// TestE2ETCPTargetGoesAway: a target that closes the connections mid-run ends the run
// with a clear error, exit 1 and valid partial JSON.
func TestE2ETCPTargetGoesAway(t *testing.T) {
	s, backend, id := serveSim(t, "nssize:16m", serve.Config{}, false)
	gone := dropWhenBusy(t, s, backend, true)
	r := runBinary(t, "-q", "16", "-o", "4k", "-w", "randread", "-t", "60", "-r", id, "--output-format", "json")
	<-gone
	if r.code != exitFailed {
		t.Fatalf("exit %d, want %d: %s", r.code, exitFailed, r.stderr)
	}
	if r.wall > 30*time.Second {
		t.Errorf("a lost target took %v to end the run", r.wall)
	}
	if strings.Contains(r.stderr, "goroutine ") {
		t.Fatalf("crash output on stderr:\n%s", r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	if !strings.HasPrefix(d.Status, "device_failed") || !strings.Contains(d.Error, "closed the connection") {
		t.Errorf("status %q error %q", d.Status, d.Error)
	}
	if d.Total.All.IOs == 0 {
		t.Error("no partial results before the failure")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
