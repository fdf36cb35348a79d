package nvmetcp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Reader reads PDUs from a byte stream through a preallocated buffer. Next reads and
// parses a header; the caller then reads the PDU's data with ReadData (straight into
// its own buffer) or drops it with Discard. Nothing allocates per PDU. A Reader belongs
// to one goroutine.
type Reader struct {
	br      *bufio.Reader
	digests Digests
	maxData int
	hdr     [MaxHeaderSize]byte
	h       Header
	pending bool // the current PDU's data is not consumed yet
	scratch [128 + DigestSize]byte
}

// NewReader reads PDUs from r through a bufSize-byte buffer. maxData bounds the data
// of one PDU; larger PDUs are protocol errors.
func NewReader(r io.Reader, bufSize, maxData int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize), maxData: maxData}
}

// SetDigests sets the digests negotiated for the PDUs after ICReq/ICResp.
func (r *Reader) SetDigests(d Digests) { r.digests = d }

// SetMaxData changes the largest data part accepted.
func (r *Reader) SetMaxData(n int) { r.maxData = n }

// Buffered is how many bytes are read from the stream and not yet consumed.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Fill reads from the stream into the buffer (one read of the underlying reader when
// the buffer is empty) without consuming anything: a host polls with it, its stream
// answering "would block" when the socket has nothing.
func (r *Reader) Fill() error {
	_, err := r.br.Peek(1)
	return err
}

// Header is the last header Next returned.
func (r *Reader) Header() *Header { return &r.h }

// RawHeader is the wire form of the last header read (for a TermReq's data).
func (r *Reader) RawHeader() []byte {
	n := r.h.HeaderBytes
	if n == 0 {
		n = CHSize
	}
	return r.hdr[:n]
}

// Next reads the next PDU header, first discarding the data of the previous PDU if the
// caller did not read it. Stream errors (io.EOF, a closed connection) are returned as
// they are; malformed PDUs as *ProtocolError.
func (r *Reader) Next() (*Header, error) {
	if r.pending {
		if err := r.Discard(); err != nil {
			return nil, err
		}
	}
	r.h.HeaderBytes = 0
	if _, err := io.ReadFull(r.br, r.hdr[:CHSize]); err != nil {
		return nil, err
	}
	total, err := CheckCommonHeader(r.hdr[:CHSize], r.digests, r.maxData)
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r.br, r.hdr[CHSize:total]); err != nil {
		return nil, unexpectedEOF(err)
	}
	if err := ParseHeader(r.hdr[:total], r.digests, r.maxData, &r.h); err != nil {
		return nil, err
	}
	r.pending = r.h.DataLen > 0
	return &r.h, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// skip reads and drops n bytes.
func (r *Reader) skip(n int) error {
	_, err := r.br.Discard(n)
	return unexpectedEOF(err)
}

// ReadData reads the current PDU's data into dst, which must be exactly DataLen bytes,
// skipping the padding before it and checking its digest. A digest mismatch returns
// *DataDigestError after the whole PDU is consumed, so the stream stays in step.
func (r *Reader) ReadData(dst []byte) error {
	if !r.pending {
		return errors.New("nvmetcp: ReadData: the current PDU has no unread data")
	}
	if len(dst) != r.h.DataLen {
		return fmt.Errorf("nvmetcp: ReadData: buffer of %d bytes for %d bytes of data", len(dst), r.h.DataLen)
	}
	r.pending = false
	if pad := r.h.DataOffset - r.h.HeaderBytes; pad > 0 {
		if err := r.skip(pad); err != nil {
			return err
		}
	}
	if _, err := io.ReadFull(r.br, dst); err != nil {
		return unexpectedEOF(err)
	}
	if !r.h.DataDigest {
		return nil
	}
	if _, err := io.ReadFull(r.br, r.scratch[:DigestSize]); err != nil {
		return unexpectedEOF(err)
	}
	got := binary.LittleEndian.Uint32(r.scratch[:])
	if want := CRC32C(dst); got != want {
		return &DataDigestError{Type: r.h.CH.Type, Got: got, Want: want}
	}
	return nil
}

// Discard drops the current PDU's data.
func (r *Reader) Discard() error {
	if !r.pending {
		return nil
	}
	r.pending = false
	return r.skip(int(r.h.CH.PLEN) - r.h.HeaderBytes)
}

// Writer queues PDUs and sends everything queued with one write system call per Flush
// (writev through net.Buffers when the stream is a network connection), as a PCIe
// queue pair rings its doorbell once per poll. Headers, digests and small data are
// copied into a preallocated arena; larger data is referenced in place and must not
// change until Flush returns. When the arena or the vector fills up, the Writer
// flushes by itself. Nothing allocates per PDU. A Writer belongs to one goroutine.
type Writer struct {
	w       io.Writer
	digests Digests
	align   int // data offset alignment the peer asked for: (PDA+1)*4
	arena   []byte
	segFrom int // start in arena of the segment not yet in vec
	vec     [][]byte
	out     net.Buffers
	queued  int
	err     error
	// Stats.
	Flushes uint64 // write system calls (writev) issued
	PDUs    uint64 // PDUs sent
}

// copyLimit is the largest data copied into the arena rather than referenced.
const copyLimit = 1024

// NewWriter writes PDUs to w with an arena of arenaSize bytes (at least 4 KiB).
func NewWriter(w io.Writer, arenaSize int) *Writer {
	arenaSize = max(arenaSize, 4096)
	return &Writer{w: w, align: 4, arena: make([]byte, 0, arenaSize), vec: make([][]byte, 0, 256)}
}

// SetDigests sets the digests negotiated for the PDUs after ICReq/ICResp.
func (w *Writer) SetDigests(d Digests) { w.digests = d }

// SetDataAlignment sets the PDA the peer asked for (HPDA from an ICReq when writing as
// a controller, CPDA from an ICResp as a host); data offsets are multiples of (pda+1)*4.
func (w *Writer) SetDataAlignment(pda uint8) { w.align = (int(min(pda, MaxPDA)) + 1) * 4 }

// Queued is the number of PDUs waiting for Flush.
func (w *Writer) Queued() int { return w.queued }

// Err is the first write error; once set every later call fails with it.
func (w *Writer) Err() error { return w.err }

// reserve makes room for n contiguous arena bytes, flushing when needed, and returns
// them.
func (w *Writer) reserve(n int) []byte {
	if len(w.arena)+n > cap(w.arena) || len(w.vec)+3 > cap(w.vec) {
		_ = w.Flush()
	}
	if n > cap(w.arena) { // cannot happen with the sizes used here
		w.arena = make([]byte, 0, n)
		w.segFrom = 0
	}
	s := len(w.arena)
	w.arena = w.arena[:s+n]
	b := w.arena[s : s+n]
	clear(b)
	return b
}

// closeSegment moves the arena bytes written since the last segment into vec.
func (w *Writer) closeSegment() {
	if len(w.arena) > w.segFrom {
		w.vec = append(w.vec, w.arena[w.segFrom:len(w.arena)])
		w.segFrom = len(w.arena)
	}
}

// header queues a PDU header of hlen bytes (filled by fill) for a PDU with dataLen
// bytes of data, adding digests, padding and the data.
func (w *Writer) pdu(t PDUType, flags uint8, hlen int, data []byte, fill func(b []byte)) {
	if w.err != nil {
		return
	}
	dig := hasDigests(t)
	hd := dig && w.digests.Header
	dd := dig && w.digests.Data && len(data) > 0
	hdrBytes := hlen
	if hd {
		hdrBytes += DigestSize
		flags |= FlagHDGST
	}
	if dd {
		flags |= FlagDDGST
	}
	pdo := 0
	if len(data) > 0 {
		pdo = hdrBytes
		if t != TypeH2CTermReq && t != TypeC2HTermReq {
			pdo = (hdrBytes + w.align - 1) / w.align * w.align
		}
	}
	plen := hdrBytes
	if len(data) > 0 {
		plen = pdo + len(data)
		if dd {
			plen += DigestSize
		}
	}
	inline := len(data) <= copyLimit
	head := pdo
	if len(data) == 0 {
		head = hdrBytes
	}
	n := head
	if inline {
		n = plen
	}
	b := w.reserve(n)
	ch := CommonHeader{Type: t, Flags: flags, HLEN: uint8(hlen), PLEN: uint32(plen)}
	if len(data) > 0 && t != TypeH2CTermReq && t != TypeC2HTermReq {
		ch.PDO = uint8(pdo)
	}
	ch.marshal(b)
	if fill != nil {
		fill(b[:hlen])
	}
	if hd {
		binary.LittleEndian.PutUint32(b[hlen:], CRC32C(b[:hlen]))
	}
	if len(data) > 0 {
		if inline {
			copy(b[pdo:], data)
			if dd {
				binary.LittleEndian.PutUint32(b[pdo+len(data):], CRC32C(data))
			}
		} else {
			w.closeSegment()
			w.vec = append(w.vec, data)
			if dd {
				d := w.reserve(DigestSize)
				binary.LittleEndian.PutUint32(d, CRC32C(data))
			}
		}
	}
	w.queued++
}

// ICReq queues an Initialize Connection Request.
func (w *Writer) ICReq(hpda uint8, digests Digests, maxR2T uint32) {
	w.pdu(TypeICReq, 0, ICReqSize, nil, func(b []byte) {
		binary.LittleEndian.PutUint16(b[8:], 0)
		b[10], b[11] = hpda, digestBits(digests)
		binary.LittleEndian.PutUint32(b[12:], maxR2T)
	})
}

// ICResp queues an Initialize Connection Response.
func (w *Writer) ICResp(cpda uint8, digests Digests, maxH2CData uint32) {
	w.pdu(TypeICResp, 0, ICRespSize, nil, func(b []byte) {
		b[10], b[11] = cpda, digestBits(digests)
		binary.LittleEndian.PutUint32(b[12:], maxH2CData)
	})
}

func digestBits(d Digests) uint8 {
	var v uint8
	if d.Header {
		v |= DigestHeader
	}
	if d.Data {
		v |= DigestData
	}
	return v
}

// DigestsFromBits decodes an ICReq/ICResp DGST byte.
func DigestsFromBits(v uint8) Digests {
	return Digests{Header: v&DigestHeader != 0, Data: v&DigestData != 0}
}

// TermReq queues an H2CTermReq (host) or C2HTermReq (controller) carrying the header in
// error (cut to MaxTermReqData bytes).
func (w *Writer) TermReq(fromHost bool, fes uint16, fei uint32, bad []byte) {
	t := TypeC2HTermReq
	if fromHost {
		t = TypeH2CTermReq
	}
	if len(bad) > MaxTermReqData {
		bad = bad[:MaxTermReqData]
	}
	w.pdu(t, 0, TermReqHdrSize, bad, func(b []byte) {
		binary.LittleEndian.PutUint16(b[8:], fes)
		binary.LittleEndian.PutUint32(b[10:], fei)
	})
}

// CapsuleCmd queues a command capsule with optional in-capsule data. The caller sets
// the SQE's SGL (SetCommandData).
func (w *Writer) CapsuleCmd(sqe *spec.Command, data []byte) {
	w.pdu(TypeCapsuleCmd, 0, CapsuleCmdSize, data, func(b []byte) { marshalSQE(b[CHSize:], sqe) })
}

// CapsuleResp queues a response capsule.
func (w *Writer) CapsuleResp(cqe *spec.Completion) {
	w.pdu(TypeCapsuleResp, 0, CapsuleRespSize, nil, func(b []byte) { marshalCQE(b[CHSize:], cqe) })
}

// H2CData queues host-to-controller data answering the R2T with tag ttag.
func (w *Writer) H2CData(cid, ttag uint16, offset uint32, data []byte, last bool) {
	var flags uint8
	if last {
		flags = FlagLastPDU
	}
	w.pdu(TypeH2CData, flags, DataHdrSize, data, func(b []byte) {
		le := binary.LittleEndian
		le.PutUint16(b[8:], cid)
		le.PutUint16(b[10:], ttag)
		le.PutUint32(b[12:], offset)
		le.PutUint32(b[16:], uint32(len(data)))
	})
}

// C2HData queues controller-to-host data; success (which needs last) tells the host
// the command succeeded and no CapsuleResp follows.
func (w *Writer) C2HData(cid uint16, offset uint32, data []byte, last, success bool) {
	var flags uint8
	if last {
		flags |= FlagLastPDU
		if success {
			flags |= FlagSuccess
		}
	}
	w.pdu(TypeC2HData, flags, DataHdrSize, data, func(b []byte) {
		le := binary.LittleEndian
		le.PutUint16(b[8:], cid)
		le.PutUint32(b[12:], offset)
		le.PutUint32(b[16:], uint32(len(data)))
	})
}

// R2T queues a Ready to Transfer for length bytes at offset of command cid.
func (w *Writer) R2T(cid, ttag uint16, offset, length uint32) {
	w.pdu(TypeR2T, 0, R2TSize, nil, func(b []byte) {
		le := binary.LittleEndian
		le.PutUint16(b[8:], cid)
		le.PutUint16(b[10:], ttag)
		le.PutUint32(b[12:], offset)
		le.PutUint32(b[16:], length)
	})
}

// Raw queues bytes as they are (tests use it to send malformed PDUs).
func (w *Writer) Raw(b []byte) {
	dst := w.reserve(len(b))
	copy(dst, b)
	w.queued++
}

// Flush sends every queued PDU with one write (writev) call.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	w.closeSegment()
	if len(w.vec) == 0 {
		return nil
	}
	w.out = w.vec
	_, err := w.out.WriteTo(w.w)
	w.Flushes++
	w.PDUs += uint64(w.queued)
	clear(w.vec) // drop references to caller data
	w.vec = w.vec[:0]
	w.out = nil
	w.arena = w.arena[:0]
	w.segFrom = 0
	w.queued = 0
	if err != nil {
		w.err = err
	}
	return err
}
