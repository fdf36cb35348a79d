package nvme_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// countingCB counts completions by outcome.
type countingCB struct{ ok, failed int }

func (c *countingCB) CommandDone(_ any, cpl *spec.Completion) {
	if cpl.StatusField().OK() {
		c.ok++
	} else {
		c.failed++
	}
}

// checkRoundTripAllocsNothing submits one 512-byte read at a time on q and polls it to
// completion, 2000 times, and fails if that allocates or any read fails; what names the
// queue's setup in the message.
func checkRoundTripAllocsNothing(t *testing.T, dev *sim.Controller, q *nvme.QPair, what string) {
	t.Helper()
	buf, err := dev.Allocator().Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	var cb countingCB
	cmd := readCmd(0)
	allocs := testing.AllocsPerRun(2000, func() {
		if err := q.Submit(&cmd, buf.Slice(0, 512), &cb, nil); err != nil {
			t.Fatal(err)
		}
		for q.Outstanding() > 0 {
			if _, err := q.Poll(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("submit and poll %s allocate %.2f times per command", what, allocs)
	}
	if cb.ok < 2000 || cb.failed != 0 {
		t.Errorf("%s: %+v", what, cb)
	}
}

// resetLosingOneRead runs 40 reads on q (moving its rings and slots away from 0), then
// makes the controller fatal with one read outstanding and polls until the reset has
// completed that read with an error: exactly one reset.
func resetLosingOneRead(t *testing.T, dev *sim.Controller, c *nvme.Controller, q *nvme.QPair, buf bus.Buffer) {
	t.Helper()
	for i := 0; i < 40; i++ { // move the rings and the slots away from 0
		if st := do(t, q, ptr(readCmd(uint64(i))), buf.Slice(0, 512)); !st.OK() {
			t.Fatal(st)
		}
	}
	dev.Faults().SetFrozen(true)
	var cb countingCB
	cmd := readCmd(1)
	if err := q.Submit(&cmd, buf.Slice(0, 512), &cb, nil); err != nil {
		t.Fatal(err)
	}
	setFatal(t, dev)
	if err := pollUntil(t, q, "the lost command completing", func() bool { return cb.failed == 1 }); err != nil {
		t.Fatalf("poll failed instead of recovering: %v", err)
	}
	if c.Resets() != 1 {
		t.Fatalf("%d resets, want 1", c.Resets())
	}
}

// setFatal makes the frozen simulator fatal and, once CSTS.CFS shows, unfreezes it: so
// the device thread cannot run the queued commands between the two.
func setFatal(t *testing.T, dev *sim.Controller) {
	t.Helper()
	dev.Faults().SetFatal()
	deadline := time.Now().Add(30 * time.Second)
	for !spec.CSTS(dev.Registers().Read32(spec.RegCSTS)).CFS() {
		if time.Now().After(deadline) {
			t.Fatal("CSTS.CFS not set within 30 s of SetFatal")
		}
		time.Sleep(time.Millisecond)
	}
	dev.Faults().SetFrozen(false)
}

func TestSimFatalControllerIsResetAndQueuesComeBack(t *testing.T) {
	dev, c := attachWith(t, nvme.Options{Recovery: nvme.RecoveryOptions{Recover: true, MaxResets: 2}})
	qs := make([]*nvme.QPair, 2)
	for i := range qs {
		q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 32})
		if err != nil {
			t.Fatal(err)
		}
		qs[i] = q
	}
	buf, err := dev.Allocator().Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	// Commands outstanding on both queue pairs when the controller dies.
	dev.Faults().SetFrozen(true)
	var cbs [2]countingCB
	for i, q := range qs {
		for j := 0; j < 8; j++ {
			cmd := readCmd(uint64(j))
			if err := q.Submit(&cmd, buf.Slice(0, 512), &cbs[i], nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	setFatal(t, dev)
	// Each queue pair notices at its health check, the first resets the controller,
	// both re-create their queues; the lost commands complete with errors.
	for i, q := range qs {
		if err := pollUntil(t, q, "the lost commands completing", func() bool { return cbs[i].failed == 8 }); err != nil {
			t.Fatalf("queue pair %d: poll failed instead of recovering: %v", i, err)
		}
		if cbs[i].failed != 8 {
			t.Fatalf("queue pair %d: %+v", i, cbs[i])
		}
		if cbs[i].ok != 0 {
			t.Errorf("queue pair %d: %d commands succeeded on a dead controller", i, cbs[i].ok)
		}
	}
	if n := c.Resets(); n != 1 {
		t.Errorf("%d resets, want 1 (the second queue pair must reuse the first's)", n)
	}
	// I/O goes on on both.
	for i, q := range qs {
		if st := do(t, q, ptr(readCmd(3)), buf.Slice(0, 512)); !st.OK() {
			t.Errorf("queue pair %d after the reset: %v", i, st)
		}
	}
	if c.EventCount(nvme.EventReset) == 0 {
		t.Error("no reset event recorded")
	}
	if c.Err() != nil {
		t.Errorf("controller still failed: %v", c.Err())
	}
}

func TestSimMaxResetsExhausted(t *testing.T) {
	dev, c := attachWith(t, nvme.Options{Recovery: nvme.RecoveryOptions{Recover: true, MaxResets: 1}})
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 32})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := dev.Allocator().Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		var cb countingCB
		dev.Faults().SetFrozen(true)
		cmd := readCmd(1)
		if err := q.Submit(&cmd, buf.Slice(0, 512), &cb, nil); err != nil {
			t.Fatal(err)
		}
		setFatal(t, dev)
		err := pollUntil(t, q, "the failure being handled", func() bool { return cb.failed == 1 })
		if round == 1 && err != nil {
			t.Fatalf("first failure: %v, want a reset", err)
		}
		if round == 2 {
			if err == nil {
				// The command completed with an error; the next poll reports the end.
				_, err = q.Poll()
			}
			if !errors.Is(err, nvme.ErrFailed) {
				t.Fatalf("second failure with --max-resets 1: %v, want the controller failed", err)
			}
		}
	}
	if n := c.Resets(); n != 1 {
		t.Errorf("%d resets, want 1", n)
	}
}
