package nvme_test

import (
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

func TestSimRetries(t *testing.T) {
	dev, c := attachWith(t, nvme.Options{Recovery: nvme.RecoveryOptions{Retries: 4}})
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 16})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := dev.Allocator().Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	readErr := spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCUnrecoveredReadError)

	// A transient error: the retry succeeds and the caller never sees the error.
	if err := dev.Faults().FailNthIO(1, readErr); err != nil {
		t.Fatal(err)
	}
	if st := do(t, q, ptr(readCmd(0)), buf.Slice(0, 512)); !st.OK() {
		t.Errorf("transient error: caller saw %v, want success after a retry", st)
	}
	if n := c.Retries(); n != 1 {
		t.Errorf("%d retries, want 1", n)
	}

	// A lasting error: four retries, then the caller sees it.
	if err := dev.Faults().FailLBARange(1, 10, 1, readErr); err != nil {
		t.Fatal(err)
	}
	if st := do(t, q, ptr(readCmd(10)), buf.Slice(0, 512)); st != readErr {
		t.Errorf("lasting error: caller saw %v, want %v", st, readErr)
	}
	if n := c.Retries(); n != 5 {
		t.Errorf("%d retries in all, want 1+4", n)
	}
	dev.Faults().ClearLBARange()

	// Do Not Retry is honoured.
	if err := dev.Faults().FailNthIO(1, readErr.WithDNR()); err != nil {
		t.Fatal(err)
	}
	if st := do(t, q, ptr(readCmd(0)), buf.Slice(0, 512)); st != readErr.WithDNR() {
		t.Errorf("DNR error: caller saw %v", st)
	}
	if n := c.Retries(); n != 5 {
		t.Errorf("a DNR status was retried (%d retries)", n)
	}

	// A Command Retry Delay (CRD 1 = CRDT1 = 100 ms on the simulator) delays the retry.
	if got := c.Identify().CRDT(1); got != 1 {
		t.Fatalf("simulator CRDT1 %d, want 1", got)
	}
	if err := dev.Faults().FailNthIO(1, readErr.WithCRD(1)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if st := do(t, q, ptr(readCmd(0)), buf.Slice(0, 512)); !st.OK() {
		t.Errorf("CRD error: caller saw %v, want success after a delayed retry", st)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("retry came after %v, before the 100 ms retry delay", took)
	}
	if n := c.Retries(); n != 6 {
		t.Errorf("%d retries, want 6", n)
	}
	if n := c.EventCount(nvme.EventRetry); n != 6 {
		t.Errorf("%d retry events, want 6", n)
	}
}
