package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/blockdev/looptest"
	"github.com/nvmeperf/nvmeperf/driver/nvmeioctl"
	"github.com/nvmeperf/nvmeperf/report"
)

// skipWithoutURing skips when the kernel here has no usable io_uring.
func skipWithoutURing(t *testing.T, r e2eRun) {
	t.Helper()
	if r.code != 0 && strings.Contains(r.stderr, "io_uring") && (strings.Contains(r.stderr, "not supported") || strings.Contains(r.stderr, "disabled")) {
		t.Skipf("io_uring unavailable here: %s", r.stderr)
	}
}

// A file has no SMART log: the run has no health entry and is not disturbed; with
// --health a notice says why there is none.
func TestE2EKernelFileHasNoHealth(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data.img")
	r := runBinary(t, "-q", "4", "-o", "4k", "-w", "randwrite", "-d", "200", "-t", "30", "--size", "4m", "--output-format", "json", file)
	skipWithoutURing(t, r)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	if _, ok := d.raw["health"]; ok || strings.Contains(r.stderr, "health") {
		t.Errorf("a file target got health %v, stderr %q", d.raw["health"], r.stderr)
	}
	r = runBinary(t, "-q", "4", "-o", "4k", "-w", "randread", "-d", "200", "-t", "30", "--health", file)
	if r.code != 0 || strings.Contains(r.stdout, "Health of") || !strings.Contains(r.stderr, file+" is not an NVMe device") {
		t.Errorf("--health on a file: exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// A block device of another driver (a loop device) is not NVMe: no health entry, a
// clear notice with --health, and the run is ok.
func TestE2ENonNVMeDeviceHasNoHealth(t *testing.T) {
	dev := looptest.New(t, 8<<20, looptest.Options{})
	r := runBinary(t, "-q", "4", "-o", "4k", "-w", "randread", "-d", "200", "-t", "30", "--health", "--output-format", "json", dev)
	skipWithoutURing(t, r)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	d := decodeDoc(t, r.stdout)
	if _, ok := d.raw["health"]; ok || d.Status != "ok" {
		t.Errorf("loop device: status %q, health %v", d.Status, d.raw["health"])
	}
	if !strings.Contains(r.stderr, "--health: "+dev+" is not an NVMe device") || strings.Contains(r.stderr, "panic") {
		t.Errorf("stderr does not say why there is no health:\n%s", r.stderr)
	}
}

// A kernel controller whose log cannot be read (a /dev node that is not the controller,
// a path that is not a device at all) gets an entry with the error, in JSON and in the
// --health text, and a notice; nothing fails.
func TestKernelHealthErrorsAreRecorded(t *testing.T) {
	var out, errb bytes.Buffer
	a := newApp([]string{"nvmeperf"}, &out, &errb)
	a.recovery.health = true
	notADevice := filepath.Join(t.TempDir(), "nvme8")
	a.recovery.kernel = []*kernelController{
		{ref: nvmeioctl.ControllerRef{Name: "nvme7", Path: "/dev/null", Dev: "242:7"}, label: "/dev/nvme7",
			targets: []string{"/dev/nvme7n1", "/dev/ng7n2"}},
		{ref: nvmeioctl.ControllerRef{Name: "nvme8", Path: notADevice, Dev: "242:8"}, label: notADevice,
			targets: []string{"/dev/nvme8n1"}, err: "before the run: permission denied"},
	}
	var meta report.Meta
	a.kernelHealthAfter(&meta)
	if meta.Recovery == nil || len(meta.Recovery.Health) != 2 {
		t.Fatalf("recovery %+v, want two health entries", meta.Recovery)
	}
	h := meta.Recovery.Health
	if h[0].Device != "/dev/nvme7" || len(h[0].Targets) != 2 || h[0].After != nil || h[0].Difference != nil ||
		!strings.Contains(h[0].Error, "after the run: ") || !strings.Contains(h[0].Error, "sysfs says controller nvme7 is 242:7") {
		t.Errorf("wrong device node: %+v", h[0])
	}
	if !strings.HasPrefix(h[1].Error, "before the run: permission denied; after the run: ") || !strings.Contains(h[1].Error, "not NVMe") && !strings.Contains(h[1].Error, "no such file") {
		t.Errorf("missing node: %+v", h[1])
	}
	if meta.Recovery.Events != nil || meta.Recovery.Counts != nil {
		t.Errorf("events %+v, counts %+v from health errors", meta.Recovery.Events, meta.Recovery.Counts)
	}
	if !strings.Contains(errb.String(), "nvmeperf: health of /dev/nvme7: after the run: ") {
		t.Errorf("no notice:\n%s", errb.String())
	}
	text := a.recoveryText(meta)
	if text == nil || len(text.Health) != 2 {
		t.Errorf("--health text leaves out the errors: %+v", text)
	}
}
