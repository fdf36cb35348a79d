package nvme

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Controller.CMB describes the buffer from the CMBLOC and CMBSZ the controller shows
// (here a pre-1.4 controller, CAP.CMBS clear, whose registers read as they are), and
// says whether and why not the I/O SQs go there.
func TestCMBInfoFromRegisters(t *testing.T) {
	cases := []struct {
		name     string
		cmbsz    uint32
		cmbloc   uint32
		opts     Options
		want     CMBInfo // Reason: a substring
		wantText string
	}{
		{
			name: "none", cmbsz: 0, cmbloc: 0,
			want:     CMBInfo{Reason: "no controller memory buffer"},
			wantText: "none",
		},
		{
			// RDS|WDS, SZU 1 (64 KiB) × SZ 4; BAR 4 at OFST 3 (× 64 KiB).
			name: "data only", cmbsz: 0x00004118, cmbloc: 0x00003004,
			want: CMBInfo{Size: 256 << 10, CMBSZ: 0x00004118, CMBLOC: 0x00003004, BAR: 4, Offset: 3 * 64 << 10,
				Supports: CMBSupport{RDS: true, WDS: true}, Reason: "cannot hold submission queues"},
			wantText: "256 KiB (262144 bytes) in BAR 4 at offset 0x30000, supports RDS WDS; I/O SQs in host memory: the controller memory buffer cannot hold submission queues",
		},
		{
			// SQS|CQS|LISTS, SZU 0 (4 KiB) × SZ 3, BAR 2 at offset 0: SQs allowed, but
			// this transport cannot map a BAR.
			name: "sqs unmappable", cmbsz: 0x00003007, cmbloc: 0x00000002,
			want: CMBInfo{Size: 12 << 10, CMBSZ: 0x00003007, CMBLOC: 0x00000002, BAR: 2,
				Supports: CMBSupport{SQS: true, CQS: true, LISTS: true}, Reason: "cannot map"},
			wantText: "12 KiB (12288 bytes) in BAR 2 at offset 0x0, supports SQS CQS LISTS; I/O SQs in host memory: the transport cannot map",
		},
		{
			name: "disabled", cmbsz: 0x00004118, cmbloc: 0x00003004, opts: Options{NoSQInCMB: true},
			want:     CMBInfo{Reason: "disabled"},
			wantText: "not read: disabled (-D / --no-sq-cmb)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDev(63)
			d.regs[spec.RegCMBSZ], d.regs[spec.RegCMBLOC] = tc.cmbsz, tc.cmbloc
			opts := tc.opts
			opts.ReadyTimeout, opts.AdminTimeout = 50_000_000, 1_000_000_000
			c, err := Attach(d, d, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Detach()
			got := c.CMB()
			if !strings.Contains(got.Reason, tc.want.Reason) {
				t.Errorf("reason %q, want it to contain %q", got.Reason, tc.want.Reason)
			}
			got.Reason, tc.want.Reason = "", ""
			if got != tc.want {
				t.Errorf("CMB() = %+v\nwant     %+v", got, tc.want)
			}
			if s := c.CMB().String(); !strings.HasPrefix(s, tc.wantText) {
				t.Errorf("String() = %q, want it to start with %q", s, tc.wantText)
			}
		})
	}
}

// The JSON of a CMBInfo (nvmeperf list): sizes in bytes, the BAR, what CMBSZ allows and
// where the SQs go; the raw registers stay out.
func TestCMBInfoJSON(t *testing.T) {
	sz := spec.CMBSZ(0x0001021D) // QEMU, cmb_size_mb=16
	info := CMBInfo{Size: sz.Size(), CMBSZ: sz, CMBLOC: 0x62, BAR: 2,
		Supports: CMBSupport{SQS: true, LISTS: true, RDS: true, WDS: true}, SQs: true}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"size_bytes":16777216,"bar":2,"offset_bytes":0,"supports":{"sqs":true,"cqs":false,"lists":true,"rds":true,"wds":true},"sq_in_cmb":true}`
	if string(b) != want {
		t.Errorf("JSON %s\nwant %s", b, want)
	}
	if s := info.String(); s != "16 MiB (16777216 bytes) in BAR 2 at offset 0x0, supports SQS LISTS RDS WDS; I/O SQs in the CMB" {
		t.Errorf("String() = %q", s)
	}
	info.SQs, info.Reason = false, "why"
	if b, _ := json.Marshal(info); !strings.HasSuffix(string(b), `"sq_in_cmb":false,"sq_in_cmb_reason":"why"}`) {
		t.Errorf("JSON without SQs: %s", b)
	}
}

func TestExactBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0:          "0 bytes",
		1000:       "1000 bytes",
		4096:       "4 KiB (4096 bytes)",
		1536 << 10: "1536 KiB (1572864 bytes)",
		16 << 20:   "16 MiB (16777216 bytes)",
		64 << 30:   "64 GiB (68719476736 bytes)",
		3 << 50:    "3 PiB (3377699720527872 bytes)",
		4096 << 50: "4096 PiB (4611686018427387904 bytes)",
	} {
		if got := exactBytes(n); got != want {
			t.Errorf("exactBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
