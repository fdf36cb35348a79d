package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// SQs in the controller memory buffer through the CLI: used when the controller has a
// CMB for SQs (cmb:SIZE), shown by --transport-stats and JSON transport_stats
// (sq_in_cmb: queue pairs with the SQ in the CMB), data verified, and kept in host
// memory with -D and --no-sq-cmb.
func TestE2ESQInCMB(t *testing.T) {
	const sim = "trtype:sim nssize:16m cmb:1m strict:1"
	t.Run("text", func(t *testing.T) {
		code, out, errOut := runCLI(t, "-q", "8", "-o", "4k", "-w", "randrw", "-M", "50", "--verify", "-P", "2", "-t", "0.3", "-r", sim, "--transport-stats")
		if code != 0 {
			t.Fatalf("exit %d: %s\n%s", code, errOut, out)
		}
		if !strings.Contains(out, "\tsq_in_cmb:           2\n") {
			t.Fatalf("want sq_in_cmb 2 (two queue pairs) in:\n%s", out)
		}
	})
	type device struct {
		CMBBytes *uint64 `json:"cmb_bytes"`
		SQInCMB  *bool   `json:"sq_in_cmb"`
	}
	stats := func(t *testing.T, extra ...string) (map[string]uint64, device) {
		t.Helper()
		args := append([]string{"-q", "8", "-o", "4k", "-w", "randread", "-t", "0.2", "-r", sim, "--output-format", "json"}, extra...)
		code, out, errOut := runCLI(t, args...)
		var d struct {
			Devices []device
			Jobs    []struct {
				TransportStats map[string]uint64 `json:"transport_stats"`
			}
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil || code != 0 || len(d.Jobs) != 1 || len(d.Devices) != 1 {
			t.Fatalf("exit %d (%v): %s", code, err, errOut)
		}
		return d.Jobs[0].TransportStats, d.Devices[0]
	}
	t.Run("json", func(t *testing.T) {
		s, dev := stats(t)
		if s["sq_in_cmb"] != 1 || s["completions"] == 0 {
			t.Errorf("transport_stats %v, want sq_in_cmb 1", s)
		}
		if dev.CMBBytes == nil || *dev.CMBBytes != 1<<20 || dev.SQInCMB == nil || !*dev.SQInCMB {
			t.Errorf("devices[0] cmb_bytes %v sq_in_cmb %v, want 1048576 and true", dev.CMBBytes, dev.SQInCMB)
		}
	})
	for _, flag := range []string{"-D", "--disable-sq-cmb", "--no-sq-cmb"} {
		t.Run(flag, func(t *testing.T) {
			s, dev := stats(t, flag)
			if v, ok := s["sq_in_cmb"]; !ok || v != 0 || s["completions"] == 0 {
				t.Errorf("transport_stats %v, want sq_in_cmb 0", s)
			}
			if dev.SQInCMB != nil {
				t.Errorf("devices[0] sq_in_cmb %v, want absent", *dev.SQInCMB)
			}
		})
	}
}
