package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/serve"
)

// Against `nvmeperf serve`, the health difference counts the run's commands and
// data units (serve's SMART / Health log counts the subsystem's I/O), and the
// temperature is not zero.
func TestE2ETCPHealthCountsTheRun(t *testing.T) {
	_, id := tcpTarget(t, "nssize:16m", serve.Config{}, false)
	for _, c := range []struct {
		workload     string
		ios          string
		cmds, blocks uint64
	}{
		{"randwrite", "4000", 4000, 32}, // 4000 × 8 units of 512 bytes = 32 thousands
		{"randread", "2000", 2000, 16},
	} {
		r := runBinary(t, "-q", "8", "-o", "4k", "-w", c.workload, "-d", c.ios, "-t", "30",
			"-r", id, "--output-format", "json")
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", c.workload, r.code, r.stderr)
		}
		d := decodeDoc(t, r.stdout)
		if len(d.Health) != 1 || d.Health[0].Difference == nil || d.Health[0].After == nil {
			t.Fatalf("%s: health %+v, want one controller with both snapshots", c.workload, d.Health)
		}
		diff, after := d.Health[0].Difference, d.Health[0].After
		var cmds, units, otherCmds, otherUnits uint64
		if c.workload == "randwrite" {
			cmds, units, otherCmds, otherUnits = diff.HostWriteCommands, diff.DataUnitsWritten, diff.HostReadCommands, diff.DataUnitsRead
		} else {
			cmds, units, otherCmds, otherUnits = diff.HostReadCommands, diff.DataUnitsRead, diff.HostWriteCommands, diff.DataUnitsWritten
		}
		if cmds != c.cmds || units != c.blocks || otherCmds != 0 || otherUnits != 0 {
			t.Errorf("%s: difference %+v, want %d commands and %d data units, nothing the other way", c.workload, *diff, c.cmds, c.blocks)
		}
		if after.TemperatureK == 0 {
			t.Errorf("%s: temperature 0 K after the run", c.workload)
		}
	}
}

// An asynchronous event serve raises during the run reaches the host over TCP: the
// events have it, with the critical warning read from serve's SMART / Health log.
func TestE2ETCPAsyncEventRecorded(t *testing.T) {
	s, id := tcpTarget(t, "nssize:16m", serve.Config{}, false)
	raised := make(chan int, 1)
	go func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			l := s.SMARTLog()
			if spec.Counter128(l.HostReadCommands) >= 100 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		raised <- s.RaiseAsyncEvent(spec.AsyncEventTypeSMART, spec.AsyncInfoTemperature, spec.LogSMARTHealth)
	}()
	r := runBinary(t, "-q", "8", "-o", "4k", "-w", "randread", "-t", "3", "-r", id, "--output-format", "json")
	if n := <-raised; n != 1 {
		t.Fatalf("the event reached %d controllers, want 1 (the run's)", n)
	}
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	found := false
	for _, e := range d.Events {
		found = found || e.Kind == "async_event" && strings.Contains(e.Details, "SMART") && strings.Contains(e.Details, "critical warning 0x02")
	}
	if !found || len(d.Recovery) != 1 || d.Recovery[0].AsyncEvents != 1 {
		t.Errorf("events %+v, recovery %+v: want the SMART event", d.Events, d.Recovery)
	}
	if len(d.Health) != 1 || d.Health[0].Difference == nil || d.Health[0].Difference.NewCriticalWarnings != 0x02 {
		t.Errorf("health %+v: want the new temperature warning", d.Health)
	}
}
