package spec

import "testing"

// CMBSZ (offset 3Ch) decoded from raw register values worked out by hand from the NVMe
// Base specification: SQS bit 0, CQS bit 1, LISTS bit 2, RDS bit 3, WDS bit 4, SZU bits
// 11:8 (4 KiB << 4×SZU: 4 KiB, 64 KiB, 1 MiB, 16 MiB, 256 MiB, 4 GiB, 64 GiB; 7-Fh
// reserved), SZ bits 31:12 in SZU units.
func TestCMBSZSizeUnits(t *testing.T) {
	units := []uint64{4 << 10, 64 << 10, 1 << 20, 16 << 20, 256 << 20, 4 << 30, 64 << 30}
	for szu, unit := range units {
		for _, sz := range []uint32{0, 1, 3, 0xFFFFF} {
			raw := CMBSZ(uint32(szu)<<8 | sz<<12)
			if raw.SZU() != uint8(szu) || raw.SZ() != sz {
				t.Errorf("%#08x: SZU %d SZ %d, want %d and %d", uint32(raw), raw.SZU(), raw.SZ(), szu, sz)
			}
			if raw.Unit() != unit {
				t.Errorf("%#08x: unit %d, want %d", uint32(raw), raw.Unit(), unit)
			}
			if want := uint64(sz) * unit; raw.Size() != want {
				t.Errorf("%#08x: size %d, want %d", uint32(raw), raw.Size(), want)
			}
		}
	}
	// The largest CMB CMBSZ can describe: (2^20 - 1) × 64 GiB, no overflow.
	if got, want := CMBSZ(0xFFFFF<<12|6<<8).Size(), uint64(0xFFFFF)<<36; got != want {
		t.Errorf("largest size %d, want %d", got, want)
	}
	// Reserved size units describe no usable CMB.
	for szu := uint32(7); szu <= 0xF; szu++ {
		if raw := CMBSZ(szu<<8 | 16<<12 | 0x1F); raw.Unit() != 0 || raw.Size() != 0 {
			t.Errorf("reserved SZU %d: unit %d size %d, want 0 and 0", szu, raw.Unit(), raw.Size())
		}
	}
}

func TestCMBSZSupportBits(t *testing.T) {
	type bits struct{ sqs, cqs, lists, rds, wds bool }
	cases := []struct {
		raw  uint32
		want bits
	}{
		{0x00, bits{}},
		{0x01, bits{sqs: true}},
		{0x02, bits{cqs: true}},
		{0x04, bits{lists: true}},
		{0x08, bits{rds: true}},
		{0x10, bits{wds: true}},
		{0x1F, bits{true, true, true, true, true}},
		{0xE0, bits{}},                                  // bits 7:5 are reserved
		{0xFFFFF0E0 | 0x0A, bits{cqs: true, rds: true}}, // size fields do not leak into the bits
	}
	for _, c := range cases {
		r := CMBSZ(c.raw)
		got := bits{r.SQS(), r.CQS(), r.LISTS(), r.RDS(), r.WDS()}
		if got != c.want {
			t.Errorf("%#08x: %+v, want %+v", c.raw, got, c.want)
		}
	}
}

// CMBLOC (offset 38h): BIR bits 2:0, OFST bits 31:12 in CMBSZ size units; bits 8:3
// (CQMMS, CQPDS, CDPMLS, CDPCILS, CDMMMS, CQDA) must not change BIR or OFST.
func TestCMBLOCDecode(t *testing.T) {
	cases := []struct {
		loc    uint32
		sz     uint32
		bir    uint8
		ofst   uint32
		offset uint64
	}{
		{0x00000000, 0x00010201, 0, 0, 0},
		{0x00003004, 0x00004101, 4, 3, 3 * 64 << 10},                // 3 × 64 KiB in BAR 4
		{0x000011FD, 0x00001001, 5, 1, 4 << 10},                     // bits 8:3 all set
		{0x00002002, 0x00008301, 2, 2, 2 * 16 << 20},                // 2 × 16 MiB
		{0xFFFFF003, 0x00001601, 3, 0xFFFFF, uint64(0xFFFFF) << 36}, // 64 GiB units
		{0x00001002, 0x00001701, 2, 1, 0},                           // reserved SZU: no offset
	}
	for _, c := range cases {
		loc := CMBLOC(c.loc)
		if loc.BIR() != c.bir || loc.OFST() != c.ofst {
			t.Errorf("CMBLOC %#08x: BIR %d OFST %d, want %d and %d", c.loc, loc.BIR(), loc.OFST(), c.bir, c.ofst)
		}
		if got := loc.Offset(CMBSZ(c.sz)); got != c.offset {
			t.Errorf("CMBLOC %#08x with CMBSZ %#08x: offset %d, want %d", c.loc, c.sz, got, c.offset)
		}
	}
}

// QEMU's controller with cmb_size_mb=16 (hw/nvme, NVMe 1.4 scheme, once CMBMSC.CRE is
// set): CMBSZ has SQS, LISTS, RDS and WDS, no CQS, SZU 2 (1 MiB) and SZ 16, so
// 0x0001021D; CMBLOC has BIR 2, CDPMLS and CDPCILS, offset 0, so 0x00000062.
func TestCMBQEMUValues(t *testing.T) {
	sz, loc := CMBSZ(0x0001021D), CMBLOC(0x00000062)
	if sz.Size() != 16<<20 || !sz.SQS() || sz.CQS() || !sz.LISTS() || !sz.RDS() || !sz.WDS() {
		t.Errorf("QEMU CMBSZ decodes as %v", sz)
	}
	if loc.BIR() != 2 || loc.Offset(sz) != 0 {
		t.Errorf("QEMU CMBLOC decodes as %v, offset %d", loc, loc.Offset(sz))
	}
	// The encoders the controller models use give the same register values.
	if got := MakeCMBSZ(CMBSZSQS|CMBSZLISTS|CMBSZRDS|CMBSZWDS, 2, 16); got != sz {
		t.Errorf("MakeCMBSZ = %#08x, want %#08x", uint32(got), uint32(sz))
	}
	if got := MakeCMBLOC(4, 3); got != 0x00003004 {
		t.Errorf("MakeCMBLOC(4, 3) = %#08x, want 0x00003004", uint32(got))
	}
	if s := sz.String(); s != "CMBSZ{SZ:16777216 bytes SQS:true CQS:false LISTS:true RDS:true WDS:true}" {
		t.Errorf("String() = %q", s)
	}
	if s := loc.String(); s != "CMBLOC{BIR:2 OFST:0}" {
		t.Errorf("String() = %q", s)
	}
}

func TestIdentifyDoorbellBufferConfig(t *testing.T) {
	var id IdentifyController
	for _, c := range []struct {
		oacs uint16
		want bool
	}{{0, false}, {1 << 8, true}, {0xFEFF, false}, {0x0106, true}} {
		id.OACS = c.oacs
		if got := id.DoorbellBufferConfig(); got != c.want {
			t.Errorf("OACS %#04x: Doorbell Buffer Config %t, want %t", c.oacs, got, c.want)
		}
	}
}
