package nvme

import (
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/spec"
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
