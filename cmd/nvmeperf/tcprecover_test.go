package main

import (
	"strings"
	"testing"
	"time"

	simdev "github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/serve"
)

// tcpSimTarget serves a simulated namespace with default target settings (serveSim).
func tcpSimTarget(t *testing.T, simKeys string) (*serve.Server, *simdev.Controller, string) {
	t.Helper()
	return serveSim(t, simKeys, serve.Config{}, false)
}

// dropWhenBusy makes s drop every connection once the host has had 100 I/O commands
// served (its workers run), or ends the target for good (forGood). It returns a
// channel that is closed once it did.
func dropWhenBusy(t *testing.T, s *serve.Server, backend *simdev.Controller, forGood bool) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(60 * time.Second)
		for backend.Stats().IOCommands < 100 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if forGood {
			s.Close()
		} else {
			s.DropConnections()
		}
	}()
	return done
}

func eventKinds(events []report.Event) map[string]int {
	m := map[string]int{}
	for _, e := range events {
		m[e.Kind]++
	}
	return m
}

// TestE2ETCPRecoverAfterDroppedConnections: with --recover -Q, a target that drops
// every connection during the warm-up is reset (a new association) and the measured
// phase does I/O with no error; dropped during the measured phase, the reads in flight
// are counted as errors (io_errors, exit 0) and the run goes on.
func TestE2ETCPRecoverAfterDroppedConnections(t *testing.T) {
	t.Run("during warm-up", func(t *testing.T) {
		s, backend, id := tcpSimTarget(t, "nssize:16m")
		dropped := dropWhenBusy(t, s, backend, false)
		r := runBinary(t, "-q", "16", "-o", "4k", "-w", "randread", "-a", "4", "-t", "1", "-Q", "--recover",
			"-r", id, "--output-format", "json")
		<-dropped
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		d := decodeDoc(t, r.stdout)
		if d.Status != "ok" || d.Total.All.IOs == 0 || d.Total.All.Errors != 0 {
			t.Errorf("status %q, ios %d, errors %d: want I/O after the reset and no error in the measured phase",
				d.Status, d.Total.All.IOs, d.Total.All.Errors)
		}
		k := eventKinds(d.Events)
		if len(d.Recovery) != 1 || d.Recovery[0].Resets != 1 || k["reset"] != 2 || k["reconnect"] != 1 || !strings.Contains(r.stderr, "1 resets") {
			t.Errorf("JSON recovery %+v, events %v, stderr:\n%s", d.Recovery, k, r.stderr)
		}
		if got := s.Stats().Controllers; got != 2 {
			t.Errorf("the target created %d controllers, want 2 (one per association)", got)
		}
	})
	t.Run("measured", func(t *testing.T) {
		// Every command takes 200 ms in the simulated namespace, so the dropped
		// connection takes commands with it. (At 20 ms a host worker starved that long on
		// a loaded machine had all 16 answers waiting in its socket when the connection
		// closed and nothing in flight to lose: a test assumption, not a host error.)
		s, backend, id := tcpSimTarget(t, "nssize:16m faildelay:200ms")
		dropped := dropWhenBusy(t, s, backend, false)
		r := runBinary(t, "-q", "16", "-o", "4k", "-w", "randrw", "-M", "50", "-t", "5", "-Q", "--recover",
			"-r", id, "--output-format", "json")
		<-dropped
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		d := decodeDoc(t, r.stdout)
		if d.Status != "io_errors" || d.Total.All.Errors == 0 || d.Total.All.Errors > 16 || d.Total.All.IOs == 0 {
			t.Errorf("status %q, ios %d, errors %d: want the I/O in flight (at most 16) counted as errors\nevents %+v\n%s",
				d.Status, d.Total.All.IOs, d.Total.All.Errors, d.Events, r.stderr)
		}
		if len(d.Recovery) != 1 || d.Recovery[0].Resets != 1 {
			t.Errorf("JSON recovery %+v", d.Recovery)
		}
	})
}

// TestE2ETCPRecoverTargetGone: with --recover, a target that goes away for good is
// tried --max-resets times; then the run ends with exit 1, device_failed, an error that
// says so and valid partial results — no hang.
func TestE2ETCPRecoverTargetGone(t *testing.T) {
	s, backend, id := tcpSimTarget(t, "nssize:16m")
	gone := dropWhenBusy(t, s, backend, true)
	r := runBinary(t, "-q", "16", "-o", "4k", "-w", "randread", "-t", "60", "-Q", "--recover", "--max-resets", "2",
		"-r", id, "--output-format", "json")
	<-gone
	if r.code != exitFailed {
		t.Fatalf("exit %d, want %d: %s", r.code, exitFailed, r.stderr)
	}
	if r.wall > 40*time.Second {
		t.Errorf("a lost target took %v to end the run", r.wall)
	}
	if strings.Contains(r.stderr, "goroutine ") {
		t.Fatalf("crash output on stderr:\n%s", r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	if !strings.HasPrefix(d.Status, "device_failed") || !strings.Contains(d.Error, "still failing after 2 resets") {
		t.Errorf("status %q error %q", d.Status, d.Error)
	}
	if d.Total.All.IOs == 0 {
		t.Error("no partial results before the failure")
	}
	if len(d.Recovery) != 1 || d.Recovery[0].Resets != 2 || eventKinds(d.Events)["reset"] < 4 {
		t.Errorf("JSON recovery %+v, events %v", d.Recovery, eventKinds(d.Events))
	}
}

// TestE2ETCPRetries: --retries works over NVMe/TCP: a read the target's namespace fails
// once (no Do Not Retry) is sent again and succeeds; the caller never sees the error.
func TestE2ETCPRetries(t *testing.T) {
	_, id := tcpTarget(t, "nssize:16m failnth:100", serve.Config{}, false)
	r := runBinary(t, "-q", "8", "-o", "4k", "-w", "randread", "-t", "1", "-Q", "--retries", "4",
		"-r", id, "--output-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	if d.Status != "ok" || d.Total.All.Errors != 0 || d.Total.All.IOs == 0 {
		t.Errorf("status %q, ios %d, errors %d: want the failed read retried", d.Status, d.Total.All.IOs, d.Total.All.Errors)
	}
	if len(d.Recovery) != 1 || d.Recovery[0].Retries != 1 || eventKinds(d.Events)["retry"] != 1 {
		t.Errorf("JSON recovery %+v, events %v: want one retry", d.Recovery, eventKinds(d.Events))
	}
}

// TestE2ETCPHungCommand: --io-timeout works over NVMe/TCP. A read the target never
// answers times out; the target does not abort it (nvmeperf serve answers Abort with
// "not aborted"), so the controller is failed: without --recover the run ends with
// device_failed, with --recover the association is replaced and the run goes on.
func TestE2ETCPHungCommand(t *testing.T) {
	t.Run("no recover", func(t *testing.T) {
		_, id := tcpTarget(t, "nssize:16m failnth:100 failstatus:hang", serve.Config{}, false)
		r := runBinary(t, "-q", "8", "-o", "4k", "-w", "randread", "-t", "30", "-Q", "--io-timeout", "1s",
			"-r", id, "--output-format", "json")
		if r.code != exitFailed {
			t.Fatalf("exit %d, want %d: %s", r.code, exitFailed, r.stderr)
		}
		d := decodeDoc(t, r.stdout)
		if !strings.HasPrefix(d.Status, "device_failed") || !strings.Contains(d.Error, "did not abort") || d.Total.All.IOs == 0 {
			t.Errorf("status %q, error %q, ios %d", d.Status, d.Error, d.Total.All.IOs)
		}
		if len(d.Recovery) != 1 || d.Recovery[0].Timeouts == 0 || d.Recovery[0].Aborts != 1 {
			t.Errorf("JSON recovery %+v", d.Recovery)
		}
	})
	t.Run("recover", func(t *testing.T) {
		_, id := tcpTarget(t, "nssize:16m failnth:100 failstatus:hang", serve.Config{}, false)
		r := runBinary(t, "-q", "8", "-o", "4k", "-w", "randread", "-t", "4", "-Q", "--recover", "--io-timeout", "1s",
			"-r", id, "--output-format", "json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		d := decodeDoc(t, r.stdout)
		if d.Status != "io_errors" || d.Total.All.Errors == 0 || d.Total.All.Errors > 8 {
			t.Errorf("status %q, errors %d: want the reads in flight at the reset (at most 8) counted", d.Status, d.Total.All.Errors)
		}
		if len(d.Recovery) != 1 || d.Recovery[0].Timeouts == 0 || d.Recovery[0].Aborts != 1 || d.Recovery[0].Resets != 1 {
			t.Errorf("JSON recovery %+v", d.Recovery)
		}
	})
}
