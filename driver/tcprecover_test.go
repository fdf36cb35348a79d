package driver_test

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver"
	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/serve"
)

// holdTarget is a RAM namespace that can hold the requests it gets: while hold is set,
// its queues complete nothing, so a test knows which commands are in flight.
type holdTarget struct {
	memTarget
	hold atomic.Bool
	held atomic.Int64 // requests received and not completed
}

func (h *holdTarget) OpenQueue(cfg target.QueueConfig) (target.Queue, error) {
	q, err := h.memTarget.OpenQueue(cfg)
	if err != nil {
		return nil, err
	}
	return &holdQueue{Queue: q, h: h}, nil
}

type holdQueue struct {
	target.Queue
	h *holdTarget
}

func (q *holdQueue) Submit(r *target.Request) error {
	if err := q.Queue.Submit(r); err != nil {
		return err
	}
	q.h.held.Add(1)
	return nil
}

func (q *holdQueue) Poll() (int, error) {
	if q.h.hold.Load() {
		return 0, nil
	}
	n, err := q.Queue.Poll()
	q.h.held.Add(int64(-n))
	return n, err
}

// startHoldTarget serves one holdTarget of size bytes on a loopback port.
func startHoldTarget(t *testing.T, size int) (*serve.Server, *holdTarget, string) {
	t.Helper()
	h := &holdTarget{memTarget: memTarget{data: make([]byte, size)}}
	s, err := serve.New(serve.Config{Namespaces: []target.Target{h}})
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
		h.hold.Store(false)
		s.Close()
		<-done
	})
	return s, h, ln.Addr().String()
}

// keepBusy polls qs, resubmitting every completed read at once, until stop says so or
// the generous deadline passes; it returns the reads that succeeded and failed.
func keepBusy(t *testing.T, qs []target.Queue, w *waiter, stop func(ok, failed int) bool) (ok, failed int, err error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !stop(ok, failed) {
		if time.Now().After(deadline) {
			t.Fatalf("no end after 60 s: %d reads succeeded, %d failed", ok, failed)
		}
		for _, q := range qs {
			if _, err := q.Poll(); err != nil {
				return ok, failed, err
			}
		}
		for _, r := range w.done {
			if r.Err != nil {
				failed++
			} else {
				ok++
			}
			q := qs[r.Tag]
			if err := q.Submit(r); err != nil {
				return ok, failed, err
			}
		}
		w.done = w.done[:0]
	}
	return ok, failed, nil
}

// openRecovering opens the namespace behind addr with --recover and two queue pairs of
// depth 8 with reads in flight.
func openRecovering(t *testing.T, addr string, maxResets int) (target.Target, *driver.Controller, []target.Queue, *waiter) {
	t.Helper()
	opts := driver.Options{NVMe: nvme.Options{Recovery: nvme.RecoveryOptions{Recover: true, MaxResets: maxResets, Retries: 4, AsyncEvents: true}}}
	ts, c, err := driver.OpenTRID(tcpTRID(addr, serve.DefaultNQN), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts[0].Close() })
	w := &waiter{}
	var qs []target.Queue
	for i := range 2 {
		q, err := ts[0].OpenQueue(target.QueueConfig{Depth: 8, IOSize: 4096, Handler: w})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		qs = append(qs, q)
		for j := range 8 {
			r := &target.Request{Op: target.OpRead, Offset: uint64(j) * 4096, Length: 4096, Buf: j, Tag: i}
			if err := q.Submit(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ts[0], c, qs, w
}

// TestTCPRecoverAfterDroppedConnections: a target that drops every connection mid-run
// (as one that restarts does) is reset with --recover: the reads in flight fail and
// are counted, each queue pair connects again to the new controller, and reads go on
// — with the data the namespace held.
func TestTCPRecoverAfterDroppedConnections(t *testing.T) {
	s, h, addr := startHoldTarget(t, 4<<20)
	tg, c, qs, w := openRecovering(t, addr, 3)

	// An idle queue pair, opened before the drop, reconnects at its next Poll too.
	iw := &waiter{}
	iq, err := tg.OpenQueue(target.QueueConfig{Depth: 1, IOSize: 4096, Handler: iw})
	if err != nil {
		t.Fatal(err)
	}
	defer iq.Close()

	if _, _, err := keepBusy(t, qs, w, func(ok, _ int) bool { return ok >= 200 }); err != nil {
		t.Fatalf("before the drop: %v", err)
	}
	// The target holds what it gets from now on: once all 16 reads are held there, the
	// connections are dropped with exactly those in flight.
	h.hold.Store(true)
	if _, _, err := keepBusy(t, qs, w, func(int, int) bool { return h.held.Load() == 16 }); err != nil {
		t.Fatalf("holding: %v", err)
	}
	n := s.DropConnections()
	h.hold.Store(false)
	if n < 4 {
		t.Fatalf("the target dropped %d connections, want the admin queue and 3 I/O queues", n)
	}
	// The 16 reads in flight fail; then reads succeed again on the new association.
	var failedAtOnce int
	okAfter, failed, err := keepBusy(t, qs, w, func(ok, f int) bool {
		if f == 0 {
			return false
		}
		if failedAtOnce == 0 {
			failedAtOnce = f
		}
		return ok >= 200
	})
	if err != nil {
		t.Fatalf("after the drop: %v", err)
	}
	if failedAtOnce != 16 || failed != 16 || okAfter < 200 {
		t.Fatalf("%d reads failed with the lost connections (%d at once), %d succeeded after; want 16 failed", failed, failedAtOnce, okAfter)
	}
	ctrl := c.NVMe
	if ctrl.Err() != nil || ctrl.Resets() != 1 {
		t.Fatalf("after recovery: err %v, %d resets; want none and 1", ctrl.Err(), ctrl.Resets())
	}
	// Commands submitted to a queue pair still on the lost association would fail (as
	// on PCIe): the idle queue pair's next Poll reconnects it first.
	if _, err := iq.Poll(); err != nil {
		t.Fatalf("the idle queue pair's first poll after the reset: %v", err)
	}
	data := bytes.Repeat([]byte{0xA5}, 4096)
	copy(iq.Buffer(0), data)
	do(t, iq, iw, &target.Request{Op: target.OpWrite, Offset: 1 << 20, Length: 4096})
	clear(iq.Buffer(0))
	do(t, iq, iw, &target.Request{Op: target.OpRead, Offset: 1 << 20, Length: 4096})
	if !bytes.Equal(iq.Buffer(0), data) {
		t.Fatal("data written after the reset does not read back")
	}
	events, _ := ctrl.Events()
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, string(e.Kind)+": "+e.Detail)
	}
	all := strings.Join(kinds, "\n")
	if ctrl.EventCount(nvme.EventReset) != 2 || ctrl.EventCount(nvme.EventReconnect) != 3 ||
		!strings.Contains(all, "closed the connection") || !strings.Contains(all, "controller ID 2 (was 1)") {
		t.Fatalf("events:\n%s", all)
	}
}

// TestTCPRecoverGivesUp: a target that goes away for good is tried --max-resets times,
// then the queue pairs fail with an error that says so — no hang.
func TestTCPRecoverGivesUp(t *testing.T) {
	s, addr := startTarget(t, serve.Config{}, 4<<20)
	_, c, qs, w := openRecovering(t, addr, 2)
	if _, _, err := keepBusy(t, qs, w, func(ok, _ int) bool { return ok >= 100 }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.Close()
	_, failed, err := keepBusy(t, qs, w, func(int, int) bool { return false })
	if !errors.Is(err, nvme.ErrFailed) || !strings.Contains(err.Error(), "still failing after 2 resets") {
		t.Fatalf("error %v, want the controller failed after 2 resets", err)
	}
	if failed == 0 {
		t.Error("no read failed with the lost connections")
	}
	if c.NVMe.Resets() != 2 {
		t.Errorf("%d resets, want 2", c.NVMe.Resets())
	}
	t.Logf("gave up after %v", time.Since(start))
}

// TestTCPRecoverFromFatalStatus: a controller that sets CSTS.CFS (seen through Property
// Get) is reset with --recover, its connections replaced, and reads go on.
func TestTCPRecoverFromFatalStatus(t *testing.T) {
	s, addr := startTarget(t, serve.Config{}, 4<<20)
	_, c, qs, w := openRecovering(t, addr, 3)
	if _, _, err := keepBusy(t, qs, w, func(ok, _ int) bool { return ok >= 100 }); err != nil {
		t.Fatal(err)
	}
	if n := s.SetFatal(); n != 1 {
		t.Fatalf("%d controllers set fatal, want 1", n)
	}
	if _, _, err := keepBusy(t, qs, w, func(int, int) bool { return c.NVMe.Resets() > 0 }); err != nil {
		t.Fatalf("waiting for the reset: %v", err)
	}
	if _, _, err := keepBusy(t, qs, w, func(ok, _ int) bool { return ok >= 100 }); err != nil {
		t.Fatalf("after the reset: %v", err)
	}
	events, _ := c.NVMe.Events()
	if len(events) == 0 || !strings.Contains(events[0].Detail, "fatal status") || c.NVMe.Resets() != 1 || c.NVMe.Err() != nil {
		t.Fatalf("resets %d, err %v, events %+v", c.NVMe.Resets(), c.NVMe.Err(), events)
	}
}

// TestTCPRecoveryOptionsAllocateNothing: with --recover, --io-timeout and --retries the
// NVMe/TCP I/O path still allocates nothing per I/O.
func TestTCPRecoveryOptionsAllocateNothing(t *testing.T) {
	checkTCPAllocatesNothing(t, driver.Options{NVMe: nvme.Options{Recovery: nvme.RecoveryOptions{
		Recover: true, IOTimeout: time.Minute, Retries: 4, AsyncEvents: true}}})
}
