package nvme

import (
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// TestDetachWithoutShutdownNotification checks spdk_nvme_perf -N's meaning: detach
// disables the controller (CC.EN=0) and never writes CC.SHN; the default shuts down.
func TestDetachWithoutShutdownNotification(t *testing.T) {
	for _, noSHN := range []bool{false, true} {
		d := newFakeDev(255)
		c, err := Attach(d, d, Options{ReadyTimeout: 50_000_000, AdminTimeout: 1_000_000_000, NoShutdownNotification: noSHN})
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		if err := c.Detach(); err != nil {
			t.Fatalf("Detach (no SHN %v): %v", noSHN, err)
		}
		cc := spec.CC(d.Read32(spec.RegCC))
		if noSHN && (cc.SHN() != spec.CCShutdownNone || cc.EN()) {
			t.Errorf("-N: CC %#x after detach, want EN=0 and no SHN", uint32(cc))
		}
		if !noSHN && cc.SHN() != spec.CCShutdownNormal {
			t.Errorf("default: CC %#x after detach, want a normal shutdown notification", uint32(cc))
		}
	}
}

// TestFUAAndTransportStats checks spdk_nvme_perf --fua (FUA on every read and write)
// and the counters --transport-stats prints.
func TestFUAAndTransportStats(t *testing.T) {
	for _, fua := range []bool{false, true} {
		d := newFakeDev(63)
		c := attachFake(t, d)
		var seen, withFUA int
		d.ioStatus = func(cmd *spec.Command) spec.Status {
			seen++
			if cmd.CDW12&spec.RWForceUnitAccess != 0 {
				withFUA++
			}
			return spec.StatusSuccess
		}
		tg := NewTarget(c.Namespace(1), target.Info{Name: "fake"}, nil)
		h := &reqRecorder{}
		qi, err := tg.OpenQueue(target.QueueConfig{Depth: 4, IOSize: 4096, Handler: h, FUA: fua})
		if err != nil {
			t.Fatal(err)
		}
		for i, op := range []target.Op{target.OpRead, target.OpWrite} {
			r := &target.Request{Op: op, Offset: uint64(i) * 4096, Length: 4096, Buf: i}
			if err := qi.Submit(r); err != nil {
				t.Fatal(err)
			}
		}
		polls := 0
		for h.n < 2 {
			if _, err := qi.Poll(); err != nil {
				t.Fatal(err)
			}
			polls++
		}
		if want := map[bool]int{false: 0, true: 2}[fua]; seen != 2 || withFUA != want {
			t.Errorf("FUA %v: %d of %d commands carried FUA, want %d", fua, withFUA, seen, want)
		}
		s := qi.(target.StatsQueue).TransportStats()
		if s.Polls != uint64(polls) || s.Completions != 2 || s.Submitted != 2 || s.IdlePolls > s.Polls || s.SQDoorbells == 0 || s.CQDoorbells == 0 {
			t.Errorf("stats %+v after %d polls", s, polls)
		}
		qi.Close()
		c.Detach()
	}
}
