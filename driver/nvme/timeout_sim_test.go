package nvme_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// attachWith attaches a driver with opts to a fresh simulator.
func attachWith(t *testing.T, opts nvme.Options) (*sim.Controller, *nvme.Controller) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.NamespaceSize = 16 << 20
	cfg.LBASize = 512
	dev, c := attachSim(t, cfg, opts)
	return dev, c
}

// readCmd is a one-block read of LBA lba on namespace 1.
func readCmd(lba uint64) spec.Command {
	cmd := spec.Command{NSID: 1, CDW10: uint32(lba), CDW11: uint32(lba >> 32)}
	cmd.SetOpcodeCID(uint8(spec.IORead), 0)
	return cmd
}

// pollUntil polls q until done says so, failing the test after a generous deadline.
func pollUntil(t *testing.T, q *nvme.QPair, what string, done func() bool) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !done() {
		if _, err := q.Poll(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within 30 s (outstanding %d, queue error %v)", what, q.Outstanding(), q.Err())
		}
	}
	return nil
}

func TestSimHungCommandIsAborted(t *testing.T) {
	// A timeout well above what a loaded machine's simulator takes for a command.
	dev, c := attachWith(t, nvme.Options{Recovery: nvme.RecoveryOptions{IOTimeout: time.Second}})
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 16})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := dev.Allocator().Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Allocator().Free(buf)
	if err := dev.Faults().HangNthIO(2); err != nil {
		t.Fatal(err)
	}
	// Four reads: the second is swallowed, the others complete.
	ws := make([]waiter, 4)
	for i := range ws {
		cmd := readCmd(uint64(i))
		if err := q.Submit(&cmd, buf.Slice(0, 512), &ws[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	err = pollUntil(t, q, "every command completing", func() bool {
		for i := range ws {
			if !ws[i].done {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("poll failed instead of aborting the hung command: %v", err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("the hung command ended after %v, before its 1s timeout", took)
	}
	for i := range ws {
		st := ws[i].cpl.StatusField()
		want := spec.StatusSuccess
		if i == 1 {
			want = spec.MakeStatus(spec.SCTGeneric, spec.SCAbortRequested)
		}
		if st != want {
			t.Errorf("read %d: status %v, want %v", i, st, want)
		}
	}
	if rs := dev.RecoveryStats(); rs.Hung != 1 || rs.Aborts != 1 || rs.Aborted != 1 {
		t.Errorf("simulator saw %+v, want one hung command, one Abort that aborted it", rs)
	}
	if n := c.EventCount(nvme.EventTimeout); n != 1 {
		t.Errorf("%d timeout events, want 1", n)
	}
	if n := c.EventCount(nvme.EventAbort); n != 1 {
		t.Errorf("%d abort events, want 1", n)
	}
	if c.Err() != nil {
		t.Errorf("controller failed: %v", c.Err())
	}
	// The queue pair goes on working.
	if st := do(t, q, ptr(readCmd(7)), buf.Slice(0, 512)); !st.OK() {
		t.Errorf("read after the abort: %v", st)
	}
	if err := c.FreeIOQPair(q); err != nil {
		t.Error(err)
	}
}

func ptr[T any](v T) *T { return &v }

// A slow command the controller will not abort fails the controller: without recovery
// there is nothing else left to do with it.
func TestSimUnabortableCommandFailsController(t *testing.T) {
	dev, c := attachWith(t, nvme.Options{Recovery: nvme.RecoveryOptions{IOTimeout: 100 * time.Millisecond}})
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 16})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := dev.Allocator().Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Faults().SetCompletionDelay(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	var w waiter
	cmd := readCmd(0)
	if err := q.Submit(&cmd, buf.Slice(0, 512), &w, nil); err != nil {
		t.Fatal(err)
	}
	err = pollUntil(t, q, "the timeout", func() bool { return w.done })
	if !errors.Is(err, nvme.ErrFailed) || !errors.Is(err, nvme.ErrTimeout) {
		t.Fatalf("poll: %v, want a controller failure from a timeout", err)
	}
	if !w.done || w.cpl.StatusField().OK() {
		t.Errorf("the command did not complete with an error (done %t, %v)", w.done, w.cpl.StatusField())
	}
	if rs := dev.RecoveryStats(); rs.Aborts != 1 || rs.Aborted != 0 {
		t.Errorf("simulator saw %+v, want one Abort that aborted nothing", rs)
	}
	dev.Faults().Clear()
}

// Timeouts, recovery, retries and asynchronous events cost the I/O path no allocation.
func TestSimRecoveryOptionsAllocateNothing(t *testing.T) {
	_, c := attachWith(t, nvme.Options{Recovery: nvme.RecoveryOptions{
		IOTimeout: 4 * time.Second, Recover: true, Retries: 4, AsyncEvents: true}})
	h := &resubmit{}
	q := openTarget(t, c, target.QueueConfig{Depth: 16, IOSize: 4096, Handler: h})
	h.q = q
	reqs := make([]target.Request, 16)
	for i := range reqs {
		reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(i) * 4096, Length: 4096, Buf: i}
		if err := q.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Past a timeout tick (1 s), so the tick clock has been read and a scan has run. A
	// timeout long enough that no command of a healthy controller meets it, even on a
	// loaded machine: a timed-out command would rightly allocate for its event.
	start := time.Now()
	for time.Since(start) < 1500*time.Millisecond {
		if _, err := q.Poll(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(5000, func() {
		if _, err := q.Poll(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Poll with recovery options allocates %.2f times per call", allocs)
	}
}
