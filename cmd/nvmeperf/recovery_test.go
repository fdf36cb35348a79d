package main

import (
	"strings"
	"testing"
	"time"
)

// A command the device swallows is aborted after --io-timeout; with -Q the run ends
// normally with that one error counted.
func TestE2EHungCommandIsAborted(t *testing.T) {
	r := runBinary(t, "-q", "8", "-o", "4k", "-w", "randread", "-t", "3", "-Q", "--io-timeout", "1s",
		"-r", sim("nssize:16m failnth:100 failstatus:hang"), "--output-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	if d.Total.All.Errors != 1 || d.Total.All.IOs == 0 {
		t.Errorf("errors %d, ios %d: want the one aborted command and I/O around it", d.Total.All.Errors, d.Total.All.IOs)
	}
	if !strings.Contains(r.stderr, "command abort requested") || !strings.Contains(r.stderr, "1 timeouts, 1 aborts, 0 resets") {
		t.Errorf("stderr does not tell of the abort:\n%s", r.stderr)
	}
	if len(d.Recovery) != 1 || d.Recovery[0].Timeouts != 1 || d.Recovery[0].Aborts != 1 || d.Recovery[0].Resets != 0 {
		t.Errorf("JSON recovery counts %+v, want one timeout and one abort", d.Recovery)
	}
	kinds := map[string]int{}
	for _, e := range d.Events {
		kinds[e.Kind]++
		if e.Device == "" || e.Time == "" || e.Details == "" {
			t.Errorf("event without device, time or details: %+v", e)
		}
	}
	if kinds["timeout"] != 1 || kinds["abort"] != 1 {
		t.Errorf("JSON events %+v, want a timeout and an abort", d.Events)
	}
	if r.wall > 25*time.Second {
		t.Errorf("run took %v", r.wall)
	}
}

// Bad timeout values are usage errors naming the flag and the value.
func TestE2ETimeoutFlagsAreChecked(t *testing.T) {
	for _, args := range [][]string{{"--io-timeout", "0"}, {"--io-timeout", "5"}, {"--admin-timeout", "2h"}} {
		r := runBinary(t, append([]string{"-q", "1", "-o", "4k", "-w", "read", "-t", "1", "-r", sim("nssize:16m")}, args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, args[0]+" "+args[1]) {
			t.Errorf("%v: exit %d, stderr %q; want a usage error naming the flag and value", args, r.code, r.stderr)
		}
	}
}

// A controller that fails during warm-up is reset with --recover; the measured phase
// after it does I/O and sees no error.
func TestE2ERecoverAfterFatalStatus(t *testing.T) {
	// fatalafter counts from the controller's creation: 1 s leaves a loaded machine
	// time to open the queues first; the 3 s warm-up covers the failure and the reset.
	r := runBinary(t, "-q", "8", "-o", "4k", "-w", "randread", "-a", "3", "-t", "1", "-Q", "--recover",
		"-r", sim("nssize:16m fatalafter:1s"), "--output-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	if d.Status != "ok" || d.Total.All.IOs == 0 || d.Total.All.Errors != 0 {
		t.Errorf("status %q, ios %d, errors %d: want I/O after the reset and no error in the measured phase",
			d.Status, d.Total.All.IOs, d.Total.All.Errors)
	}
	if !strings.Contains(r.stderr, "1 resets") || len(d.Recovery) != 1 || d.Recovery[0].Resets != 1 {
		t.Errorf("stderr or JSON (%+v) do not tell of the reset:\n%s", d.Recovery, r.stderr)
	}
	// --recover without -Q is refused before anything runs.
	r = runBinary(t, "-q", "1", "-o", "4k", "-w", "read", "-t", "1", "--recover", "-r", sim("nssize:16m"))
	if r.code != exitUsage || !strings.Contains(r.stderr, "--recover needs -Q") {
		t.Errorf("--recover without -Q: exit %d, stderr %q", r.code, r.stderr)
	}
}

// Health before and after the run is in the JSON, and the difference counts the run's
// commands.
func TestE2EHealthBeforeAndAfter(t *testing.T) {
	r := runBinary(t, "-q", "8", "-o", "4k", "-w", "randwrite", "-d", "4000", "-t", "30",
		"-r", sim("nssize:16m"), "--output-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	if len(d.Health) != 1 {
		t.Fatalf("health %+v, want one controller", d.Health)
	}
	h := d.Health[0]
	if h.Before == nil || h.After == nil || h.Difference == nil || h.Error != "" {
		t.Fatalf("health %+v: want both snapshots and their difference", h)
	}
	// -d counts measured I/Os; warm-up is off, so the drive saw exactly these writes.
	if h.Difference.HostWriteCommands != 4000 || h.Difference.HostReadCommands != 0 {
		t.Errorf("difference %+v, want 4000 host write commands and no reads", *h.Difference)
	}
	if h.After.TemperatureK == 0 || h.Before.Time == "" {
		t.Errorf("snapshot fields missing: %+v", *h.After)
	}
	if d.Recovery != nil || d.Events != nil {
		t.Errorf("recovery %+v, events %+v on a run that asked for none", d.Recovery, d.Events)
	}
	// --health puts the difference in the text report.
	r = runBinary(t, "-q", "8", "-o", "4k", "-w", "randwrite", "-d", "4000", "-t", "30", "--health", "-r", sim("nssize:16m"))
	if r.code != 0 || !strings.Contains(r.stdout, "Health of trtype:sim nssize:16m over the run:") {
		t.Errorf("text report with --health (exit %d):\n%s", r.code, r.stdout)
	}
}

// An asynchronous event the drive raises during the run is recorded, and the health
// difference shows its critical warning, in the text report too.
func TestE2EAsyncEventRecorded(t *testing.T) {
	r := runBinary(t, "-q", "8", "-o", "4k", "-w", "randread", "-t", "2", "-r", sim("nssize:16m aerafter:300ms"), "--output-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	found := false
	for _, e := range d.Events {
		found = found || e.Kind == "async_event" && strings.Contains(e.Details, "SMART")
	}
	if !found || len(d.Recovery) != 1 || d.Recovery[0].AsyncEvents != 1 {
		t.Errorf("events %+v, recovery %+v: want the SMART event", d.Events, d.Recovery)
	}
	if len(d.Health) != 1 || d.Health[0].Difference == nil || d.Health[0].Difference.NewCriticalWarnings != 0x02 {
		t.Errorf("health %+v: want the new temperature warning", d.Health)
	}
	r = runBinary(t, "-q", "8", "-o", "4k", "-w", "randread", "-t", "2", "-r", sim("nssize:16m aerafter:300ms"))
	if r.code != 0 || !strings.Contains(r.stdout, "NEW CRITICAL WARNINGS 0x02") || !strings.Contains(r.stdout, "1 async events") {
		t.Errorf("text report (exit %d):\n%s", r.code, r.stdout)
	}
}

// An injected failure with More set is looked up in the Error Information log, and the
// health difference counts it as a media error.
func TestE2EErrorLogOnMore(t *testing.T) {
	r := runBinary(t, "-q", "8", "-o", "4k", "-w", "randread", "-t", "1", "-Q",
		"-r", sim("nssize:16m failnth:10 failmore:1"), "--output-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	found := false
	for _, e := range d.Events {
		found = found || e.Kind == "error_log" && strings.Contains(e.Details, "error 1: unrecovered read error")
	}
	if !found {
		t.Errorf("no error_log event in %+v", d.Events)
	}
	if len(d.Health) != 1 || d.Health[0].Difference == nil || d.Health[0].Difference.MediaErrors != 1 || d.Health[0].Difference.ErrorLogEntries != 1 {
		t.Errorf("health %+v: want one media error and one error log entry", d.Health)
	}
}
