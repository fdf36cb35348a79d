package nvme_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// waitFor waits up to 30 s for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within 30 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSimAsyncEventsRecorded(t *testing.T) {
	dev, c := attachWith(t, nvme.Options{Recovery: nvme.RecoveryOptions{AsyncEvents: true, Recover: true}})
	dev.RaiseAsyncEvent(sim.AsyncEventSMART, sim.AsyncInfoTemperature, spec.LogSMARTHealth)
	waitFor(t, "the SMART event being recorded", func() bool { return c.EventCount(nvme.EventAsyncEvent) == 1 })
	events, _ := c.Events()
	last := events[len(events)-1]
	if last.Kind != nvme.EventAsyncEvent || !strings.Contains(last.Detail, "SMART / health") || !strings.Contains(last.Detail, "critical warning 0x02") {
		t.Errorf("event %+v, want a SMART event with the temperature warning read from the log", last)
	}
	// The request was sent again: a second event is seen too.
	dev.RaiseAsyncEvent(sim.AsyncEventNotice, sim.AsyncInfoNSChanged, sim.LogChangedNamespaces)
	waitFor(t, "the notice being recorded", func() bool { return c.EventCount(nvme.EventAsyncEvent) == 2 })

	// After a reset the requests are outstanding again.
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 16})
	if err != nil {
		t.Fatal(err)
	}
	dev.Faults().SetFrozen(true)
	buf, _ := dev.Allocator().Alloc(4096)
	var cb countingCB
	if err := q.Submit(ptr(readCmd(0)), buf.Slice(0, 512), &cb, nil); err != nil {
		t.Fatal(err)
	}
	setFatal(t, dev)
	if err := pollUntil(t, q, "the reset", func() bool { return cb.failed == 1 }); err != nil {
		t.Fatal(err)
	}
	dev.RaiseAsyncEvent(sim.AsyncEventError, 0, spec.LogErrorInformation)
	waitFor(t, "an event after the reset", func() bool { return c.EventCount(nvme.EventAsyncEvent) == 3 })
	if n := dev.RecoveryStats().AsyncEvents; n != 3 {
		t.Errorf("simulator posted %d events, want 3", n)
	}
}

// collect records completed requests.
type collect struct{ errs []error }

func (h *collect) Complete(r *target.Request) { h.errs = append(h.errs, r.Err) }

// A completion with More set makes the driver read the Error Information log.
func TestSimErrorLogReadOnMore(t *testing.T) {
	dev, c := attachWith(t, nvme.Options{Recovery: nvme.RecoveryOptions{AsyncEvents: true}})
	dev.Faults().SetErrorLog(true)
	if err := dev.Faults().FailNthIO(2, spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCUnrecoveredReadError)); err != nil {
		t.Fatal(err)
	}
	h := &collect{}
	q := openTarget(t, c, target.QueueConfig{Depth: 4, IOSize: 4096, Handler: h})
	reqs := make([]target.Request, 3)
	for i := range reqs {
		reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(i) * 4096, Length: 4096, Buf: i}
		if err := q.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three completions", func() bool {
		if _, err := q.Poll(); err != nil {
			t.Fatal(err)
		}
		return len(h.errs) == 3
	})
	waitFor(t, "the error log being read", func() bool { return c.EventCount(nvme.EventErrorLog) == 1 })
	events, _ := c.Events()
	var e nvme.Event
	for _, ev := range events {
		if ev.Kind == nvme.EventErrorLog {
			e = ev
		}
	}
	if e.QID != 1 || !strings.Contains(e.Detail, "error 1: unrecovered read error") || !strings.Contains(e.Detail, "LBA 8") {
		t.Errorf("error log event %+v, want the second read (LBA 8 of 512-byte blocks) with its status", e)
	}
	if log, err := c.SMART(); err != nil || spec.Counter128(log.MediaErrors) != 1 || spec.Counter128(log.ErrorLogEntries) != 1 {
		t.Errorf("SMART media errors / error log entries not 1/1 (%v)", err)
	}
}
