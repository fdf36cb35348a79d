package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver"
	"github.com/nvmeperf/nvmeperf/driver/pcie"
	"github.com/nvmeperf/nvmeperf/driver/trid"
)

var updateListGolden = flag.Bool("update-list", false, "rewrite testdata/list.*.golden from the current `nvmeperf list` output")

// listFixture is what a probe finds: two userspace-bound controllers behind which
// simulated ones are attached (one with a 16 MiB CMB that holds SQs and shadow
// doorbells, as QEMU's lab-cmb; one with neither), a kernel-bound one, and a
// userspace-bound one that cannot be attached.
func listFixture() ([]pcie.Controller, attachFunc) {
	ctrls := []pcie.Controller{
		{Address: "0000:00:04.0", VendorID: 0x1b36, DeviceID: 0x0010, Driver: pcie.DriverVFIO, NUMANode: 0},
		{Address: "0000:00:05.0", VendorID: 0x1b36, DeviceID: 0x0010, Driver: pcie.DriverUIO, NUMANode: -1},
		{Address: "0000:00:06.0", VendorID: 0x1b36, DeviceID: 0x0010, Driver: "nvme", NUMANode: 0,
			Model: "QEMU NVMe Ctrl", Serial: "lab-kernel", Firmware: "7.2", BlockDevices: []string{"nvme0n1"}},
		{Address: "0000:00:07.0", VendorID: 0x1b36, DeviceID: 0x0010, Driver: pcie.DriverVFIO, NUMANode: 0},
	}
	sims := map[string]string{
		"0000:00:04.0": "trtype:sim nssize:16m cmb:16m shadowdb:1",
		"0000:00:05.0": "trtype:sim nssize:16m",
	}
	attach := func(addr string) (*driver.Controller, error) {
		s, ok := sims[addr]
		if !ok {
			return nil, errors.New("opening " + addr + ": no such device")
		}
		id, err := trid.Parse(s)
		if err != nil {
			return nil, err
		}
		return driver.Attach(id, driver.Options{})
	}
	return ctrls, attach
}

func checkListGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateListGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test ./cmd/nvmeperf -run List -update-list rewrites it):\n%s", path, got)
	}
}

// blockOf is the lines of the text list about the controller at addr.
func blockOf(out, addr string) string {
	var b strings.Builder
	on := false
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.Count(f[0], ":") == 2 {
			on = f[0] == addr
		}
		if on {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// The text list shows, for each attached controller, its controller memory buffer
// (size, BAR, offset, what CMBSZ allows, where the I/O SQs go) and whether shadow
// doorbells are offered and used; a controller without a CMB says none.
func TestListTextCMB(t *testing.T) {
	ctrls, attach := listFixture()
	var out bytes.Buffer
	if err := writeControllerList(&out, ctrls, attach); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	checks := []struct {
		addr string
		want []string
		not  []string
	}{
		{"0000:00:04.0", []string{
			"CMB: 16 MiB (16777216 bytes) in BAR 2 at offset 0x0, supports SQS; I/O SQs in the CMB\n",
			"shadow doorbells: yes (Doorbell Buffer Config supported, used)\n",
			"NSID 1: 4096 blocks of 4096 B",
		}, nil},
		{"0000:00:05.0", []string{
			"CMB: none\n",
			"shadow doorbells: no (Doorbell Buffer Config not supported)\n",
		}, []string{"BAR"}},
		{"0000:00:06.0", []string{"QEMU NVMe Ctrl SN lab-kernel FW 7.2; block: /dev/nvme0n1"}, []string{"CMB", "shadow"}},
		{"0000:00:07.0", []string{"cannot identify: opening 0000:00:07.0: no such device"}, []string{"CMB", "shadow"}},
	}
	for _, c := range checks {
		b := blockOf(text, c.addr)
		for _, w := range c.want {
			if !strings.Contains(b, w) {
				t.Errorf("%s: no %q in:\n%s", c.addr, w, b)
			}
		}
		for _, n := range c.not {
			if strings.Contains(b, n) {
				t.Errorf("%s: %q in:\n%s", c.addr, n, b)
			}
		}
	}
	checkListGolden(t, "list.txt.golden", out.Bytes())
}

// The JSON list adds, for each attached controller, a cmb object and the shadow
// doorbell keys; kernel-bound controllers and ones that cannot be attached have none.
func TestListJSONCMB(t *testing.T) {
	ctrls, attach := listFixture()
	var out bytes.Buffer
	if err := writeControllerJSON(&out, ctrls, attach); err != nil {
		t.Fatal(err)
	}
	type cmb struct {
		SizeBytes   uint64          `json:"size_bytes"`
		BAR         *int            `json:"bar"`
		OffsetBytes *uint64         `json:"offset_bytes"`
		Supports    map[string]bool `json:"supports"`
		SQInCMB     *bool           `json:"sq_in_cmb"`
		Reason      string          `json:"sq_in_cmb_reason"`
	}
	var doc struct {
		Schema      string
		Controllers []struct {
			Address              string
			CMB                  *cmb   `json:"cmb"`
			DoorbellBufferConfig *bool  `json:"doorbell_buffer_config"`
			ShadowDoorbells      *bool  `json:"shadow_doorbells"`
			IdentifyError        string `json:"identify_error"`
		}
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if doc.Schema != "nvmeperf.list/v1" || len(doc.Controllers) != 4 {
		t.Fatalf("schema %q, %d controllers:\n%s", doc.Schema, len(doc.Controllers), out.String())
	}
	withCMB, without := doc.Controllers[0], doc.Controllers[1]
	if c := withCMB.CMB; c == nil || c.SizeBytes != 16<<20 || c.BAR == nil || *c.BAR != 2 || c.OffsetBytes == nil || *c.OffsetBytes != 0 ||
		c.SQInCMB == nil || !*c.SQInCMB || c.Reason != "" {
		t.Errorf("%s: cmb %+v, want 16 MiB in BAR 2 at 0 holding the SQs", withCMB.Address, c)
	} else if want := map[string]bool{"sqs": true, "cqs": false, "lists": false, "rds": false, "wds": false}; !equalBools(c.Supports, want) {
		t.Errorf("%s: supports %v, want %v", withCMB.Address, c.Supports, want)
	}
	if p := withCMB.DoorbellBufferConfig; p == nil || !*p || withCMB.ShadowDoorbells == nil || !*withCMB.ShadowDoorbells {
		t.Errorf("%s: doorbell_buffer_config %v shadow_doorbells %v, want true and true", withCMB.Address, p, withCMB.ShadowDoorbells)
	}
	if c := without.CMB; c == nil || c.SizeBytes != 0 || c.SQInCMB == nil || *c.SQInCMB || !strings.Contains(c.Reason, "no controller memory buffer") {
		t.Errorf("%s: cmb %+v, want size 0, no SQs, and why", without.Address, c)
	}
	if p := without.DoorbellBufferConfig; p == nil || *p || without.ShadowDoorbells == nil || *without.ShadowDoorbells {
		t.Errorf("%s: doorbell_buffer_config %v shadow_doorbells %v, want false and false", without.Address, p, without.ShadowDoorbells)
	}
	for _, c := range doc.Controllers[2:] {
		if c.CMB != nil || c.DoorbellBufferConfig != nil || c.ShadowDoorbells != nil {
			t.Errorf("%s (not identified): cmb %v doorbell_buffer_config %v shadow_doorbells %v, want absent", c.Address, c.CMB, c.DoorbellBufferConfig, c.ShadowDoorbells)
		}
	}
	if doc.Controllers[3].IdentifyError == "" {
		t.Errorf("%s: no identify_error", doc.Controllers[3].Address)
	}
	checkListGolden(t, "list.json.golden", out.Bytes())
}

func equalBools(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if got, ok := a[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Every key of the list JSON document is described in docs/list.md.
func TestListJSONKeysDocumented(t *testing.T) {
	ctrls, attach := listFixture()
	var out bytes.Buffer
	if err := writeControllerJSON(&out, ctrls, attach); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "list.md"))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, child := range x {
				if !bytes.Contains(doc, []byte("`"+k+"`")) {
					t.Errorf("list JSON key %q is not described in docs/list.md", k)
				}
				walk(child)
			}
		case []any:
			for _, child := range x {
				walk(child)
			}
		}
	}
	walk(v)
}
