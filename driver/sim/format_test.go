package sim

import (
	"bytes"
	"strings"
	"testing"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

const allChecks = spec.RWPRCHKGuard | spec.RWPRCHKAppTag | spec.RWPRCHKRefTag

// piCmd builds a read or write with PRINFO, the expected initial reference tag and the
// application tag with a full mask.
func piCmd(h *host, op spec.IOOpcode, slba uint64, nlb uint32, data bus.Buffer, md uint64, prinfo uint32, ilbrt uint32, app uint16) spec.Command {
	cmd := ioCmd(op, 1, slba, nlb)
	cmd.CDW12 |= prinfo
	cmd.CDW14 = ilbrt
	cmd.CDW15 = 0xFFFF<<16 | uint32(app)
	cmd.MPTR = md
	h.prps(&cmd, data.Addr, uint64(data.Len()))
	return cmd
}

// hostPI fills the PI of every block as a host with PRACT=0 does: guard over the data
// (and the metadata before a last-bytes PI), the application tag, and ref tags from
// ilbrt.
func hostPI(data []byte, md func(i int) []byte, lba, ms, nlb int, first bool, ilbrt uint32, app uint16, typ uint8) {
	for i := 0; i < nlb; i++ {
		m := md(i)
		pio := ms - 8
		crc := spec.CRC16T10DIF(0, data[i*lba:(i+1)*lba])
		if first {
			pio = 0
		} else {
			crc = spec.CRC16T10DIF(crc, m[:ms-8])
		}
		ref := ilbrt
		if typ != spec.PIType3 {
			ref += uint32(i)
		}
		spec.PutPI(m[pio:], spec.PI{Guard: crc, AppTag: app, RefTag: ref})
	}
}

func TestExtendedLBAWithPI(t *testing.T) {
	cfg := testConfig()
	cfg.LBASize = 512
	cfg.Format = FormatConfig{MetadataSize: 8, Extended: true, PIType: spec.PIType1}
	h := newHost(t, cfg)
	q := h.ioQueue(1, 16, 16)
	const nlb, blk = 9, 520 // 9 blocks of 520 bytes cross page boundaries mid-block
	wbuf := h.mustAlloc(nlb*blk+4096).Slice(12, nlb*blk)
	fillPattern(wbuf.Bytes, 3)
	data := make([]byte, nlb*512)
	for i := 0; i < nlb; i++ {
		copy(data[i*512:], wbuf.Bytes[i*blk:i*blk+512])
	}
	hostPI(data, func(i int) []byte { return wbuf.Bytes[i*blk+512 : (i+1)*blk] }, 512, 8, nlb, false, 100, 0x1234, 1)
	wantStatus(t, "write with host PI", st(h.run(q, piCmd(h, spec.IOWrite, 100, nlb, wbuf, 0, allChecks, 100, 0x1234))), spec.StatusSuccess)

	rbuf := h.mustAlloc(nlb*blk+4096).Slice(4, nlb*blk)
	wantStatus(t, "read, all checks", st(h.run(q, piCmd(h, spec.IORead, 100, nlb, rbuf, 0, allChecks, 100, 0x1234))), spec.StatusSuccess)
	if !bytes.Equal(rbuf.Bytes, wbuf.Bytes) {
		t.Fatal("extended blocks (data and PI) read back differ")
	}
	e2e := func(sc uint8) spec.Status { return spec.MakeStatus(spec.SCTMediaDataIntegrity, sc) }
	wantStatus(t, "read, wrong reference tag", st(h.run(q, piCmd(h, spec.IORead, 100, nlb, rbuf, 0, allChecks, 101, 0x1234))), e2e(spec.SCReferenceTagError))
	wantStatus(t, "read, wrong application tag", st(h.run(q, piCmd(h, spec.IORead, 100, nlb, rbuf, 0, allChecks, 100, 0x1235))), e2e(spec.SCApplicationTagError))
	wantStatus(t, "read, wrong tags but no checks", st(h.run(q, piCmd(h, spec.IORead, 100, nlb, rbuf, 0, 0, 1, 1))), spec.StatusSuccess)

	// A corrupted guard on the way in is refused.
	wbuf.Bytes[5*blk+512] ^= 0x40
	wantStatus(t, "write, corrupted guard", st(h.run(q, piCmd(h, spec.IOWrite, 100, nlb, wbuf, 0, allChecks, 100, 0x1234))), e2e(spec.SCGuardCheckError))

	// PRACT=1 with 8 bytes of metadata: only data moves; the controller inserts PI on
	// write and strips it on read, and a PRACT=0 read shows what it inserted.
	dbuf := h.mustAlloc(nlb * 512)
	fillPattern(dbuf.Bytes, 77)
	wantStatus(t, "PRACT=1 write", st(h.run(q, piCmd(h, spec.IOWrite, 200, nlb, dbuf, 0, spec.RWPRACT|allChecks, 200, 0x0042))), spec.StatusSuccess)
	back := h.mustAlloc(nlb * 512)
	wantStatus(t, "PRACT=1 read", st(h.run(q, piCmd(h, spec.IORead, 200, nlb, back, 0, spec.RWPRACT|allChecks, 200, 0x0042))), spec.StatusSuccess)
	if !bytes.Equal(back.Bytes, dbuf.Bytes) {
		t.Fatal("PRACT=1: data read back differs")
	}
	wantStatus(t, "PRACT=0 read of inserted PI", st(h.run(q, piCmd(h, spec.IORead, 200, nlb, rbuf, 0, 0, 0, 0))), spec.StatusSuccess)
	for i := 0; i < nlb; i++ {
		pi := spec.GetPI(rbuf.Bytes[i*blk+512:])
		want := spec.PI{Guard: spec.CRC16T10DIF(0, dbuf.Bytes[i*512:(i+1)*512]), AppTag: 0x42, RefTag: 200 + uint32(i)}
		if pi != want {
			t.Fatalf("block %d: inserted PI %+v, want %+v", i, pi, want)
		}
	}

	// Never-written blocks carry all-ones metadata, which escapes every check.
	wantStatus(t, "read unwritten, all checks", st(h.run(q, piCmd(h, spec.IORead, 5000, 2, rbuf.Slice(0, 2*blk), 0, allChecks, 5000, 7))), spec.StatusSuccess)
	if !bytes.Equal(rbuf.Bytes[512:520], bytes.Repeat([]byte{0xFF}, 8)) {
		t.Errorf("unwritten block metadata %x, want all ones", rbuf.Bytes[512:520])
	}
	// MDTS counts interleaved metadata: 256 blocks of 520 bytes exceed 128 KiB.
	if h.c.cfg.MDTS == 5 {
		big := h.mustAlloc(256 * blk)
		wantStatus(t, "extended transfer above MDTS", st(h.run(q, piCmd(h, spec.IORead, 0, 256, big, 0, 0, 0, 0))), generic(spec.SCInvalidField))
	}
}

func TestSeparateMetadataEveryPIType(t *testing.T) {
	for _, tc := range []struct {
		typ   uint8
		first bool
		ms    uint16
	}{{0, false, 8}, {1, false, 16}, {2, true, 16}, {3, false, 8}, {3, true, 64}} {
		cfg := testConfig()
		cfg.Format = FormatConfig{MetadataSize: tc.ms, PIType: tc.typ, PIFirst: tc.first}
		h := newHost(t, cfg)
		q := h.ioQueue(1, 16, 16)
		const nlb = 3
		ms := int(tc.ms)
		data := h.mustAlloc(nlb*4096+100).Slice(100, nlb*4096)
		md := h.mustAlloc(nlb*ms+4).Slice(4, nlb*ms)
		fillPattern(data.Bytes, tc.typ)
		fillPattern(md.Bytes, 50+tc.typ)
		prinfo := uint32(0)
		if tc.typ != 0 {
			prinfo = allChecks
			hostPI(data.Bytes, func(i int) []byte { return md.Bytes[i*ms : (i+1)*ms] }, 4096, ms, nlb, tc.first, 77, 0xBEEF, tc.typ)
		}
		name := func(s string) string { return strings.Join([]string{s, "pi", string('0' + tc.typ)}, " ") }
		wantStatus(t, name("write"), st(h.run(q, piCmd(h, spec.IOWrite, 77, nlb, data, md.Addr, prinfo, 77, 0xBEEF))), spec.StatusSuccess)
		rd := h.mustAlloc(nlb * 4096)
		rmd := h.mustAlloc(nlb * ms)
		wantStatus(t, name("read"), st(h.run(q, piCmd(h, spec.IORead, 77, nlb, rd, rmd.Addr, prinfo, 77, 0xBEEF))), spec.StatusSuccess)
		if !bytes.Equal(rd.Bytes, data.Bytes) || !bytes.Equal(rmd.Bytes, md.Bytes) {
			t.Errorf("%s: data or metadata read back differ", name("round trip"))
		}
		if tc.typ != 0 {
			// Corrupt one data byte in the store: the guard check on read catches it.
			h.c.namespaces[0].data[77*4096+1000] ^= 1
			wantStatus(t, name("read corrupted"), st(h.run(q, piCmd(h, spec.IORead, 77, nlb, rd, rmd.Addr, prinfo, 77, 0xBEEF))),
				spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCGuardCheckError))
		}
		wantStatus(t, name("misaligned MPTR"), st(h.run(q, piCmd(h, spec.IORead, 77, 1, rd.Slice(0, 4096), rmd.Addr+2, 0, 77, 0))), generic(spec.SCInvalidField))
		wantStatus(t, name("MPTR outside memory"), st(h.run(q, piCmd(h, spec.IORead, 77, 1, rd.Slice(0, 4096), 0x40, 0, 77, 0))), generic(spec.SCDataTransferError))

		// Identify reports the format.
		buf := h.mustAlloc(4096)
		cmd := adminOp(spec.AdminIdentify)
		cmd.CDW10 = spec.CNSNamespace
		cmd.NSID = 1
		h.prps(&cmd, buf.Addr, 4096)
		if st := st(h.adminCmd(cmd)); !st.OK() {
			t.Fatal(st)
		}
		id := (*spec.IdentifyNamespace)(unsafe.Pointer(&buf.Bytes[0]))
		wantDPS := tc.typ
		if tc.first && tc.typ != 0 {
			wantDPS |= spec.DPSFirst
		}
		if id.CurrentFormat().MS() != tc.ms || id.ExtendedMetadata() || id.DPS != wantDPS || id.MC != spec.MCExtended|spec.MCSeparate {
			t.Errorf("identify: MS %d extended %t DPS %#x MC %#x", id.CurrentFormat().MS(), id.ExtendedMetadata(), id.DPS, id.MC)
		}
	}
}

func TestWriteZeroesResetsMetadata(t *testing.T) {
	cfg := testConfig()
	cfg.Format = FormatConfig{MetadataSize: 8, Extended: true, PIType: 1}
	h := newHost(t, cfg)
	q := h.ioQueue(1, 16, 16)
	d := h.mustAlloc(4096)
	fillPattern(d.Bytes, 1)
	wantStatus(t, "write", st(h.run(q, piCmd(h, spec.IOWrite, 9, 1, d, 0, spec.RWPRACT, 9, 1))), spec.StatusSuccess)
	wz := ioCmd(spec.IOWriteZeroes, 1, 9, 1)
	wantStatus(t, "write zeroes", st(h.run(q, wz)), spec.StatusSuccess)
	w := h.mustAlloc(4104)
	wantStatus(t, "read", st(h.run(q, piCmd(h, spec.IORead, 9, 1, w, 0, allChecks, 1, 2))), spec.StatusSuccess)
	if !bytes.Equal(w.Bytes[:4096], make([]byte, 4096)) || !bytes.Equal(w.Bytes[4096:], bytes.Repeat([]byte{0xFF}, 8)) {
		t.Error("zeroed block must read as zero data with all-ones metadata")
	}
}

func TestFormatKeys(t *testing.T) {
	cfg, err := ParseOptions(map[string]string{"ms": "16", "mset": "1", "pi": "2", "pil": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Format != (FormatConfig{MetadataSize: 16, Extended: true, PIType: 2, PIFirst: true}) {
		t.Errorf("format %+v", cfg.Format)
	}
	for _, bad := range []map[string]string{
		{"ms": "-1"}, {"ms": "300"}, {"mset": "2"}, {"pi": "4"}, {"pil": "x"}, {"pi": "1", "ms": "4"}, {"pi": "1"},
	} {
		if _, err := ParseOptions(bad); err == nil {
			t.Errorf("%v accepted", bad)
		} else if !strings.Contains(err.Error(), "ms") && !strings.Contains(err.Error(), "pi") {
			t.Errorf("%v: error %q does not name the key", bad, err)
		}
	}
}

// The metadata path (interleaved copy, PI insert and check) allocates nothing either.
func TestMetadataIOPathAllocatesNothing(t *testing.T) {
	cfg := testConfig()
	cfg.Format = FormatConfig{MetadataSize: 8, Extended: true, PIType: 1}
	h := newHost(t, cfg)
	q := h.ioQueue(1, 64, 64)
	buf := h.mustAlloc(16 * 4104)
	cmds := make([]spec.Command, 4)
	for i := range cmds {
		op := spec.IOWrite
		if i%2 == 1 {
			op = spec.IORead
		}
		// PRACT=1 writes insert PI that the PRACT=0 reads then check.
		cmds[i] = piCmd(h, op, uint64(i/2)*16, 16, buf, 0, allChecks, uint32(i/2)*16, 5)
		if op == spec.IOWrite {
			cmds[i] = piCmd(h, op, uint64(i/2)*16, 16, buf.Slice(0, 16*4096), 0, spec.RWPRACT|allChecks, uint32(i/2)*16, 5)
		}
	}
	if errs := hotLoop(q, cmds, 256, 1); errs != 0 {
		t.Fatalf("%d commands failed", errs)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if errs := hotLoop(q, cmds, 64, 16); errs != 0 {
			t.Errorf("%d commands failed", errs)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per 64 metadata commands, want 0", allocs)
	}
}
