package nvmetcp

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// seedPDUs returns one well-formed PDU of every type, with the digests given.
func seedPDUs(d Digests) [][]byte {
	var out [][]byte
	add := func(f func(w *Writer)) {
		var buf bytes.Buffer
		w := NewWriter(&buf, 4096)
		w.SetDigests(d)
		w.SetDataAlignment(3)
		f(w)
		w.Flush()
		out = append(out, buf.Bytes())
	}
	sqe := spec.Command{NSID: 1}
	sqe.SetOpcodeCID(uint8(spec.IOWrite), 3)
	SetCommandData(&sqe, 16, true)
	add(func(w *Writer) { w.ICReq(0, d, 0) })
	add(func(w *Writer) { w.ICResp(0, d, 8192) })
	add(func(w *Writer) { w.CapsuleCmd(&sqe, pattern(16, 1)) })
	add(func(w *Writer) { w.CapsuleCmd(&sqe, nil) })
	add(func(w *Writer) { w.CapsuleResp(&spec.Completion{CID: 3}) })
	add(func(w *Writer) { w.R2T(3, 1, 0, 4096) })
	add(func(w *Writer) { w.H2CData(3, 1, 0, pattern(64, 2), true) })
	add(func(w *Writer) { w.C2HData(3, 0, pattern(64, 3), true, true) })
	add(func(w *Writer) { w.TermReq(true, FESPDUSequenceError, 0, pattern(24, 4)) })
	add(func(w *Writer) { w.TermReq(false, FESHeaderDigestError, 0, nil) })
	return out
}

// FuzzParsePDU feeds arbitrary bytes to the parser and to the stream reader: neither
// may panic, and whatever they accept must be consistent with the bytes given.
func FuzzParsePDU(f *testing.F) {
	for di, d := range allDigests {
		for _, p := range seedPDUs(d) {
			f.Add(p, uint8(di))
		}
	}
	f.Add([]byte{}, uint8(0))
	f.Add([]byte{4, 0, 72, 255, 255, 255, 255, 255}, uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, dsel uint8) {
		d := allDigests[int(dsel)%len(allDigests)]
		var h Header
		data, n, err := ParsePDU(b, d, 64<<10, &h)
		var de *DataDigestError
		if err == nil || errors.As(err, &de) {
			if n > len(b) || n != int(h.CH.PLEN) {
				t.Fatalf("PDU length %d for %d bytes (PLEN %d)", n, len(b), h.CH.PLEN)
			}
			if len(data) != h.DataLen || h.DataLen > 64<<10 {
				t.Fatalf("data %d bytes, DataLen %d", len(data), h.DataLen)
			}
			if h.DataLen > 0 && (h.DataOffset < h.HeaderBytes || h.DataOffset+h.DataLen > n) {
				t.Fatalf("data at %d+%d outside header %d / PDU %d", h.DataOffset, h.DataLen, h.HeaderBytes, n)
			}
		} else {
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("error of type %T: %v", err, err)
			}
		}
		// The stream reader over the same bytes: read every PDU and its data.
		r := NewReader(bytes.NewReader(b), 4096, 64<<10)
		r.SetDigests(d)
		for i := 0; i < 64; i++ {
			h, err := r.Next()
			if err != nil {
				var pe *ProtocolError
				if !errors.As(err, &pe) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("reader error of type %T: %v", err, err)
				}
				return
			}
			if h.DataLen > 0 && i%2 == 0 {
				err := r.ReadData(make([]byte, h.DataLen))
				if err != nil && !errors.As(err, &de) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("ReadData: %v", err)
				}
			}
		}
	})
}
