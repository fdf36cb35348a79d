package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

func TestFaultKeys(t *testing.T) {
	cfg, err := ParseOptions(map[string]string{"failnth": "5", "faillba": "100-199", "failnsid": "1",
		"failstatus": "2/0x81", "faildelay": "1ms", "fatalafter": "2s"})
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Faults
	want := spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCUnrecoveredReadError)
	if f.NthIO != 5 || f.LBAFirst != 100 || f.LBACount != 100 || f.LBANSID != 1 || f.Status != want ||
		f.Delay != time.Millisecond || f.FatalAfter != 2*time.Second {
		t.Fatalf("faults %v", f)
	}
	if cfg, err := ParseOptions(map[string]string{"failstatus": "write-fault"}); err != nil ||
		cfg.Faults.Status.SC() != spec.SCWriteFault {
		t.Fatalf("named status: %v %v", cfg.Faults.Status, err)
	}
	bad := map[string]string{
		"failnth": "0", "faillba": "9-3", "failnsid": "x", "failstatus": "0/0", "faildelay": "-1s", "fatalafter": "2h",
	}
	for k, v := range bad {
		_, err := ParseOptions(map[string]string{k: v})
		if err == nil || !strings.Contains(err.Error(), `key "`+k+`"`) || !strings.Contains(err.Error(), v) {
			t.Errorf("%s:%s gave %v", k, v, err)
		}
	}
}

func TestFatalAfterSetsCFS(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NamespaceSize = 1 << 20
	cfg.Faults.FatalAfter = 20 * time.Millisecond
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if spec.CSTS(c.Registers().Read32(spec.RegCSTS)).CFS() {
		t.Fatal("CFS set before fatalafter elapsed")
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if spec.CSTS(c.Registers().Read32(spec.RegCSTS)).CFS() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("CSTS.CFS never set after fatalafter")
}

// TestFaultLBARangeToTheEnd: a range up to the largest LBA must arm the fault, not wrap
// to an empty range that silently turns it off.
func TestFaultLBARangeToTheEnd(t *testing.T) {
	for _, v := range []string{"0-18446744073709551615", "5-18446744073709551615", "18446744073709551614"} {
		cfg, err := ParseOptions(map[string]string{"faillba": v, "nssize": "1m"})
		if err != nil {
			t.Fatalf("faillba:%s: %v", v, err)
		}
		if cfg.Faults.LBACount == 0 {
			t.Fatalf("faillba:%s parsed to an empty range (fault off)", v)
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatalf("faillba:%s: controller: %v", v, err)
		}
		if c.faults.armed.Load()&faultLBA == 0 {
			t.Errorf("faillba:%s: the LBA fault is not armed", v)
		}
		c.Close()
	}
	_, err := ParseOptions(map[string]string{"faillba": "18446744073709551615"})
	if err == nil || !strings.Contains(err.Error(), "faillba") || !strings.Contains(err.Error(), "18446744073709551615") {
		t.Errorf("faillba at LBA 2^64-1: %v", err)
	}
}

func TestFailStatusHang(t *testing.T) {
	cfg, err := ParseOptions(map[string]string{"failnth": "3", "failstatus": "hang"})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Faults.Hang || cfg.Faults.NthIO != 3 {
		t.Fatalf("faults %v, want the 3rd I/O to hang", cfg.Faults)
	}
	cfg.NamespaceSize = 1 << 20
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := spec.Status(c.faults.nthStatus.Load()); got != statusHang {
		t.Errorf("armed status %v, want the hang marker", got)
	}
}

func TestFailMoreKey(t *testing.T) {
	cfg, err := ParseOptions(map[string]string{"failmore": "1", "aerafter": "1s"})
	if err != nil || !cfg.Faults.ErrorLog || cfg.Faults.AsyncEventAfter != time.Second {
		t.Fatalf("faults %v, %v", cfg.Faults, err)
	}
	if _, err := ParseOptions(map[string]string{"failmore": "yes"}); err == nil || !strings.Contains(err.Error(), `key "failmore"`) {
		t.Errorf("failmore:yes gave %v", err)
	}
}
