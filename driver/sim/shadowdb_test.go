package sim_test

import (
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// shadowdb is off by default (existing runs keep ringing registers) and offers Doorbell
// Buffer Config in OACS bit 8 when on.
func TestShadowDoorbellKey(t *testing.T) {
	if sim.DefaultConfig().ShadowDoorbell {
		t.Fatal("shadow doorbells on by default")
	}
	for val, want := range map[string]bool{"1": true, "true": true, "0": false} {
		cfg, err := sim.ParseOptions(map[string]string{"shadowdb": val})
		if err != nil || cfg.ShadowDoorbell != want {
			t.Errorf("shadowdb:%s: %v, %v; want %v", val, cfg.ShadowDoorbell, err, want)
		}
	}
	if _, err := sim.ParseOptions(map[string]string{"shadowdb": "yes please"}); err == nil {
		t.Error("shadowdb:\"yes please\" accepted")
	}
	for _, on := range []bool{false, true} {
		cfg := sim.DefaultConfig()
		cfg.NamespaceSize = 1 << 20
		cfg.ShadowDoorbell = on
		dev, err := sim.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer dev.Close()
		c, err := nvme.Attach(dev.Registers(), dev.Allocator(), nvme.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Detach()
		if got := c.Identify().OACS&spec.OACSDoorbellBufferConfig != 0; got != on {
			t.Errorf("shadowdb %v: OACS %#x", on, c.Identify().OACS)
		}
		if c.ShadowDoorbells() != on {
			t.Errorf("shadowdb %v: driver uses shadow doorbells: %v", on, c.ShadowDoorbells())
		}
	}
}
