package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Shadow doorbells through the CLI: used when the controller offers them (shadowdb:1),
// their counters in --transport-stats and JSON transport_stats, off with
// --no-shadow-doorbell, and data verified either way.
func TestE2EShadowDoorbell(t *testing.T) {
	const sim = "trtype:sim nssize:16m shadowdb:1"
	t.Run("text", func(t *testing.T) {
		code, out, errOut := runCLI(t, "-q", "8", "-o", "4k", "-w", "randrw", "-M", "50", "--verify", "-t", "0.3", "-r", sim, "--transport-stats")
		if code != 0 {
			t.Fatalf("exit %d: %s\n%s", code, errOut, out)
		}
		m := regexp.MustCompile(`\tshadow_doorbell_skips: (\d+)\n`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no shadow_doorbell_skips line in:\n%s", out)
		}
		if n, _ := strconv.Atoi(m[1]); n == 0 {
			t.Errorf("no doorbell register write skipped:\n%s", out)
		}
		if strings.Contains(out, "\tcq_shadow_doorbell_updates: 0\n") {
			t.Errorf("CQ shadow updates not counted:\n%s", out)
		}
	})
	stats := func(t *testing.T, extra ...string) map[string]uint64 {
		t.Helper()
		args := append([]string{"-q", "8", "-o", "4k", "-w", "randread", "-t", "0.2", "-r", sim, "--output-format", "json"}, extra...)
		code, out, errOut := runCLI(t, args...)
		var d struct {
			Jobs []struct {
				TransportStats map[string]uint64 `json:"transport_stats"`
			}
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil || code != 0 || len(d.Jobs) != 1 {
			t.Fatalf("exit %d (%v): %s", code, err, errOut)
		}
		return d.Jobs[0].TransportStats
	}
	t.Run("json", func(t *testing.T) {
		s := stats(t)
		if s["shadow_doorbell_skips"] == 0 || s["sq_shadow_doorbell_updates"] == 0 || s["cq_shadow_doorbell_updates"] == 0 {
			t.Errorf("transport_stats %v", s)
		}
		if got, want := s["sq_mmio_doorbell_updates"]+s["cq_mmio_doorbell_updates"]+s["shadow_doorbell_skips"],
			s["sq_shadow_doorbell_updates"]+s["cq_shadow_doorbell_updates"]; got != want {
			t.Errorf("register writes plus skips %d, shadow updates %d: %v", got, want, s)
		}
	})
	t.Run("--no-shadow-doorbell", func(t *testing.T) {
		s := stats(t, "--no-shadow-doorbell")
		if _, ok := s["shadow_doorbell_skips"]; !ok {
			t.Fatalf("key missing: %v", s)
		}
		if s["shadow_doorbell_skips"]+s["sq_shadow_doorbell_updates"]+s["cq_shadow_doorbell_updates"] != 0 || s["sq_mmio_doorbell_updates"] == 0 {
			t.Errorf("transport_stats %v", s)
		}
	})
}
