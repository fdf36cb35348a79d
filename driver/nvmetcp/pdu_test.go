package nvmetcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

var allDigests = []Digests{{}, {Header: true}, {Data: true}, {Header: true, Data: true}}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)*31 + seed
	}
	return b
}

// roundTrip writes PDUs with w's settings and reads them back with the same digests.
func roundTrip(t *testing.T, d Digests, pda uint8, write func(w *Writer)) (*Reader, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, 4096)
	w.SetDigests(d)
	w.SetDataAlignment(pda)
	write(w)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Queued() != 0 {
		t.Fatalf("%d PDUs still queued after Flush", w.Queued())
	}
	r := NewReader(bytes.NewReader(buf.Bytes()), 4096, 1<<20)
	r.SetDigests(d)
	return r, &buf
}

func next(t *testing.T, r *Reader, want PDUType) *Header {
	t.Helper()
	h, err := r.Next()
	if err != nil {
		t.Fatalf("reading %s: %v", want, err)
	}
	if h.CH.Type != want {
		t.Fatalf("got %s, want %s", h.CH.Type, want)
	}
	return h
}

func TestEveryPDURoundTrips(t *testing.T) {
	for _, d := range allDigests {
		for _, pda := range []uint8{0, 7, 31} {
			small := pattern(300, 1)
			large := pattern(20000, 2) // referenced in place, not copied
			sqe := spec.Command{NSID: 1, CDW10: 0x11223344, CDW11: 5, CDW12: 7, MPTR: 0x0102030405060708}
			sqe.SetOpcodeCID(uint8(spec.IOWrite), 0xBEEF)
			SetCommandData(&sqe, uint32(len(small)), true)
			cqe := spec.Completion{DW0: 1, DW1: 2, SQHD: 3, SQID: 4, CID: 0xBEEF, Status: 0x8002}
			r, _ := roundTrip(t, d, pda, func(w *Writer) {
				w.ICReq(pda, d, 3)
				w.ICResp(pda, d, 65536)
				w.CapsuleCmd(&sqe, small)
				w.CapsuleCmd(&sqe, nil)
				w.CapsuleResp(&cqe)
				w.R2T(0xBEEF, 9, 4096, 8192)
				w.H2CData(0xBEEF, 9, 4096, large, true)
				w.C2HData(0xBEEF, 512, small, true, true)
				w.C2HData(0xBEEF, 0, large, false, false)
				w.TermReq(false, FESHeaderDigestError, 0x01020304, small[:40])
				w.TermReq(true, FESPDUSequenceError, 7, pattern(200, 3))
			})
			h := next(t, r, TypeICReq)
			if h.ICReq.HPDA != pda || DigestsFromBits(h.ICReq.DGST) != d || h.ICReq.MAXR2T != 3 || h.CH.PLEN != ICReqSize {
				t.Fatalf("ICReq %+v", h.ICReq)
			}
			h = next(t, r, TypeICResp)
			if h.ICResp.CPDA != pda || DigestsFromBits(h.ICResp.DGST) != d || h.ICResp.MAXH2CDATA != 65536 {
				t.Fatalf("ICResp %+v", h.ICResp)
			}
			h = next(t, r, TypeCapsuleCmd)
			if h.CapsuleCmd.SQE != sqe {
				t.Fatalf("SQE %+v, want %+v", h.CapsuleCmd.SQE, sqe)
			}
			if align := (int(pda) + 1) * 4; h.DataOffset%align != 0 {
				t.Fatalf("PDO %d not aligned to %d", h.DataOffset, align)
			}
			got := make([]byte, h.DataLen)
			if err := r.ReadData(got); err != nil || !bytes.Equal(got, small) {
				t.Fatalf("in-capsule data: %v, equal %t", err, bytes.Equal(got, small))
			}
			desc, err := CommandData(&h.CapsuleCmd.SQE)
			if err != nil || !desc.InCapsule || desc.Length != uint32(len(small)) {
				t.Fatalf("CommandData %+v %v", desc, err)
			}
			h = next(t, r, TypeCapsuleCmd) // without data: the reader must not expect any
			if h.DataLen != 0 || h.CH.PDO != 0 {
				t.Fatalf("data-less capsule: PDO %d DataLen %d", h.CH.PDO, h.DataLen)
			}
			h = next(t, r, TypeCapsuleResp)
			if h.CapsuleResp.CQE != cqe {
				t.Fatalf("CQE %+v", h.CapsuleResp.CQE)
			}
			h = next(t, r, TypeR2T)
			if h.R2T.CCCID != 0xBEEF || h.R2T.TTAG != 9 || h.R2T.R2TO != 4096 || h.R2T.R2TL != 8192 {
				t.Fatalf("R2T %+v", h.R2T)
			}
			h = next(t, r, TypeH2CData)
			if h.H2CData.TTAG != 9 || h.H2CData.DATAO != 4096 || h.H2CData.DATAL != uint32(len(large)) || h.CH.Flags&FlagLastPDU == 0 {
				t.Fatalf("H2CData %+v", h.H2CData)
			}
			got = make([]byte, h.DataLen)
			if err := r.ReadData(got); err != nil || !bytes.Equal(got, large) {
				t.Fatalf("H2CData data: %v", err)
			}
			h = next(t, r, TypeC2HData)
			if h.C2HData.DATAO != 512 || h.CH.Flags&(FlagLastPDU|FlagSuccess) != FlagLastPDU|FlagSuccess {
				t.Fatalf("C2HData %+v", h.C2HData)
			}
			// Not reading the data: Next skips it.
			h = next(t, r, TypeC2HData)
			if h.CH.Flags&(FlagLastPDU|FlagSuccess) != 0 || h.DataLen != len(large) {
				t.Fatalf("second C2HData %+v", h.C2HData)
			}
			if err := r.Discard(); err != nil {
				t.Fatal(err)
			}
			h = next(t, r, TypeC2HTermReq)
			if h.TermReq.FES != FESHeaderDigestError || h.TermReq.Info() != 0x01020304 || h.DataLen != 40 || h.CH.Flags != 0 {
				t.Fatalf("C2HTermReq %+v, %d bytes", h.TermReq, h.DataLen)
			}
			h = next(t, r, TypeH2CTermReq)
			if h.DataLen != MaxTermReqData {
				t.Fatalf("H2CTermReq data %d bytes, want it cut to %d", h.DataLen, MaxTermReqData)
			}
			if _, err := r.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the last PDU: %v", err)
			}
		}
	}
}

func TestDigestErrors(t *testing.T) {
	d := Digests{Header: true, Data: true}
	sqe := spec.Command{NSID: 1}
	data := pattern(2000, 5)
	var buf bytes.Buffer
	w := NewWriter(&buf, 8192)
	w.SetDigests(d)
	w.CapsuleCmd(&sqe, data)
	w.CapsuleResp(&spec.Completion{CID: 1})
	w.Flush()
	good := append([]byte(nil), buf.Bytes()...)

	// A flipped data byte: the data digest fails, the stream stays in step.
	bad := append([]byte(nil), good...)
	var h Header
	if err := ParseHeader(bad, d, 1<<20, &h); err != nil {
		t.Fatal(err)
	}
	bad[h.DataOffset+10] ^= 1
	r := NewReader(bytes.NewReader(bad), 4096, 1<<20)
	r.SetDigests(d)
	next(t, r, TypeCapsuleCmd)
	var de *DataDigestError
	if err := r.ReadData(make([]byte, len(data))); !errors.As(err, &de) {
		t.Fatalf("corrupted data: %v, want a data digest error", err)
	}
	next(t, r, TypeCapsuleResp)

	// A flipped header byte: a fatal header digest error.
	bad = append([]byte(nil), good...)
	bad[20] ^= 0x80
	r = NewReader(bytes.NewReader(bad), 4096, 1<<20)
	r.SetDigests(d)
	var pe *ProtocolError
	if _, err := r.Next(); !errors.As(err, &pe) || pe.FES != FESHeaderDigestError {
		t.Fatalf("corrupted header: %v", err)
	}

	// Digests negotiated on one side only: the flags disagree.
	r = NewReader(bytes.NewReader(good), 4096, 1<<20)
	if _, err := r.Next(); !errors.As(err, &pe) || pe.FES != FESInvalidHeaderField || pe.FEI != 1 {
		t.Fatalf("digests off at the reader: %v", err)
	}
	// ParsePDU on the whole bytes finds the data digest too.
	bad = append([]byte(nil), good...)
	bad[len(good)-CapsuleRespSize-4-1] ^= 1 // inside the data digest
	if _, _, err := ParsePDU(bad, d, 1<<20, &h); !errors.As(err, &de) {
		t.Fatalf("ParsePDU with a bad data digest: %v", err)
	}
}

func TestMalformedHeaders(t *testing.T) {
	ch := func(typ PDUType, flags, hlen, pdo uint8, plen uint32, size int) []byte {
		b := make([]byte, size)
		b[0], b[1], b[2], b[3] = byte(typ), flags, hlen, pdo
		binary.LittleEndian.PutUint32(b[4:], plen)
		return b
	}
	icresp := func(maxh2c uint32, cpda uint8) []byte {
		b := ch(TypeICResp, 0, ICRespSize, 0, ICRespSize, ICRespSize)
		b[10] = cpda
		binary.LittleEndian.PutUint32(b[12:], maxh2c)
		return b
	}
	c2h := ch(TypeC2HData, 0, DataHdrSize, DataHdrSize, DataHdrSize+100, DataHdrSize+100)
	binary.LittleEndian.PutUint32(c2h[16:], 99) // DATAL disagrees with PLEN
	c2hSuccess := ch(TypeC2HData, FlagSuccess, DataHdrSize, DataHdrSize, DataHdrSize+4, DataHdrSize+4)
	binary.LittleEndian.PutUint32(c2hSuccess[16:], 4)
	cases := []struct {
		name string
		b    []byte
		fes  uint16
		fei  uint32
	}{
		{"truncated", []byte{4, 0, 72}, FESInvalidHeaderField, 0},
		{"unknown type", ch(0x08, 0, 24, 0, 24, 24), FESInvalidHeaderField, 0},
		{"wrong HLEN", ch(TypeCapsuleResp, 0, 20, 0, 24, 24), FESInvalidHeaderField, 2},
		{"PLEN below HLEN", ch(TypeCapsuleResp, 0, 24, 0, 10, 24), FESInvalidHeaderField, 4},
		{"PLEN too large", ch(TypeCapsuleCmd, 0, 72, 72, 1<<31, 72), FESInvalidHeaderField, 4},
		{"data on a CapsuleResp", ch(TypeCapsuleResp, 0, 24, 24, 40, 40), FESInvalidHeaderField, 4},
		{"PDO inside the header", ch(TypeCapsuleCmd, 0, 72, 8, 100, 100), FESInvalidHeaderField, 3},
		{"PDO beyond PLEN", ch(TypeCapsuleCmd, 0, 72, 200, 100, 100), FESInvalidHeaderField, 3},
		{"digest flag on ICReq", ch(TypeICReq, FlagHDGST, 128, 0, 128, 128), FESInvalidHeaderField, 1},
		{"unexpected HDGSTF", ch(TypeR2T, FlagHDGST, 24, 0, 28, 28), FESInvalidHeaderField, 1},
		{"DDGSTF without data", ch(TypeR2T, FlagDDGST, 24, 0, 24, 24), FESInvalidHeaderField, 1},
		{"DATAL mismatch", c2h, FESInvalidHeaderField, 16},
		{"SUCCESS without LAST", c2hSuccess, FESInvalidHeaderField, 1},
		{"zero R2T", ch(TypeR2T, 0, 24, 0, 24, 24), FESInvalidHeaderField, 16},
		{"small MAXH2CDATA", icresp(1024, 0), FESInvalidHeaderField, 12},
		{"unaligned MAXH2CDATA", icresp(4098, 0), FESInvalidHeaderField, 12},
		{"CPDA too large", icresp(8192, 32), FESInvalidHeaderField, 10},
		{"PFV 1", func() []byte { b := ch(TypeICReq, 0, 128, 0, 128, 128); b[8] = 1; return b }(), FESUnsupportedParameter, 8},
		{"TermReq data too long", ch(TypeC2HTermReq, 0, 24, 0, 24+200, 24+200), FESInvalidHeaderField, 4},
	}
	for _, tc := range cases {
		var h Header
		_, _, err := ParsePDU(tc.b, Digests{}, 1<<20, &h)
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a protocol error", tc.name, err)
			continue
		}
		if pe.FES != tc.fes || pe.FEI != tc.fei {
			t.Errorf("%s: FES %#x FEI %d, want %#x %d (%v)", tc.name, pe.FES, pe.FEI, tc.fes, tc.fei, err)
		}
		if pe.Error() == "" {
			t.Errorf("%s: empty message", tc.name)
		}
	}
	// Data larger than the receiver accepts.
	big := ch(TypeH2CData, 0, 24, 24, 24+8192, 24+8192)
	binary.LittleEndian.PutUint32(big[16:], 8192)
	var h Header
	if _, _, err := ParsePDU(big, Digests{}, 4096, &h); err == nil {
		t.Error("8 KiB H2CData accepted with a 4 KiB limit")
	}
	if _, _, err := ParsePDU(big, Digests{}, 8192, &h); err != nil {
		t.Errorf("8 KiB H2CData with an 8 KiB limit: %v", err)
	}
}

func TestCommandData(t *testing.T) {
	var c spec.Command
	if d, err := CommandData(&c); err != nil || d.Length != 0 {
		t.Errorf("no data: %+v %v", d, err)
	}
	c.PRP1 = 0x1000 // PRPs are not a fabrics data pointer
	if _, err := CommandData(&c); err == nil {
		t.Error("PRP command accepted")
	}
	SetCommandData(&c, 4096, false)
	if d, err := CommandData(&c); err != nil || d.InCapsule || d.Length != 4096 {
		t.Errorf("transport SGL: %+v %v", d, err)
	}
	c.SetSGL(spec.SGLDescriptor{Address: 64, Length: 512, ID: spec.MakeSGLID(spec.SGLTypeDataBlock, spec.SGLSubtypeOffset)})
	if _, err := CommandData(&c); err == nil {
		t.Error("in-capsule offset 64 accepted with ICDOFF 0")
	}
	c.SetSGL(spec.SGLDescriptor{Length: 512, ID: spec.MakeSGLID(0x2, 0)})
	if _, err := CommandData(&c); err == nil {
		t.Error("segment descriptor accepted")
	}
}

// TestWriterBatchesIntoOneWrite: everything queued between flushes goes out in one
// writev, large data included, and the arena spilling flushes early rather than
// growing.
func TestWriterBatchesIntoOneWrite(t *testing.T) {
	var cw countingWriter
	w := NewWriter(&cw, 8192)
	large := pattern(64<<10, 9)
	for i := 0; i < 16; i++ {
		w.CapsuleResp(&spec.Completion{CID: uint16(i)})
	}
	w.C2HData(1, 0, large, true, false)
	w.CapsuleResp(&spec.Completion{CID: 99})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Flushes != 1 || w.PDUs != 18 {
		t.Fatalf("%d flushes for %d PDUs, want 1 for 18", w.Flushes, w.PDUs)
	}
	for i := 0; i < 1000; i++ { // 24 KB of responses through an 8 KiB arena
		w.CapsuleResp(&spec.Completion{CID: uint16(i)})
	}
	w.Flush()
	if w.Flushes < 3 || w.PDUs != 1018 {
		t.Fatalf("%d flushes, %d PDUs", w.Flushes, w.PDUs)
	}
	want := 18*24 - 24 + 24 + 64<<10 + 1000*24
	if cw.n != want {
		t.Fatalf("wrote %d bytes, want %d", cw.n, want)
	}
}

type countingWriter struct{ n int }

func (c *countingWriter) Write(b []byte) (int, error) { c.n += len(b); return len(b), nil }

// TestNoAllocationsOnTheDataPath: queueing, flushing (writev on a TCP connection) and
// reading PDUs with data allocate nothing.
func TestNoAllocationsOnTheDataPath(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	_ = server.SetDeadline(time.Now().Add(60 * time.Second))
	d := Digests{Header: true, Data: true}
	w := NewWriter(client, 64<<10)
	w.SetDigests(d)
	r := NewReader(server, 64<<10, 1<<20)
	r.SetDigests(d)
	data := pattern(16<<10, 4)
	dst := make([]byte, len(data))
	cqe := spec.Completion{CID: 5}
	round := func() {
		w.C2HData(5, 0, data, true, false)
		w.CapsuleResp(&cqe)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		h, err := r.Next()
		if err != nil || h.CH.Type != TypeC2HData {
			t.Fatal(err)
		}
		if err := r.ReadData(dst); err != nil {
			t.Fatal(err)
		}
		if h, err = r.Next(); err != nil || h.CH.Type != TypeCapsuleResp {
			t.Fatal(err)
		}
	}
	round() // warm up: the poller caches its iovec array on first use
	if allocs := testing.AllocsPerRun(200, round); allocs != 0 {
		t.Fatalf("%.1f allocations per I/O round trip, want 0", allocs)
	}
	if !bytes.Equal(dst, data) {
		t.Fatal("data differs")
	}
}

func BenchmarkWriteReadPDU(b *testing.B) {
	var buf bytes.Buffer
	w := NewWriter(&buf, 64<<10)
	d := Digests{Header: true, Data: true}
	w.SetDigests(d)
	data := pattern(4096, 1)
	dst := make([]byte, 4096)
	b.SetBytes(4096)
	br := bytes.NewReader(nil)
	r := NewReader(br, 64<<10, 1<<20)
	r.SetDigests(d)
	for b.Loop() {
		buf.Reset()
		w.C2HData(1, 0, data, true, false)
		w.Flush()
		br.Reset(buf.Bytes())
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
		if err := r.ReadData(dst); err != nil {
			b.Fatal(err)
		}
	}
}
