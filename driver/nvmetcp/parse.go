package nvmetcp

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// castagnoli is the CRC32C table; hash/crc32 uses the SSE4.2/ARMv8 CRC instructions
// for it where the CPU has them.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C is the NVMe/TCP digest of b (TCP 1.0, "Digests"): CRC-32C, stored
// little-endian after what it covers.
func CRC32C(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Digests are the digests a connection negotiated in ICReq/ICResp.
type Digests struct {
	Header bool // HDGST on every PDU but ICReq, ICResp and TermReqs
	Data   bool // DDGST after the data of every PDU that has data, but TermReqs
}

// ProtocolError is a fatal transport error (TCP 1.0, "Transport Errors"): the side that
// detects it sends a TermReq with FES and FEI and closes the connection.
type ProtocolError struct {
	FES uint16 // fatal error status (FES*)
	FEI uint32 // fatal error information: offset of the bad field, or the bad value
	Msg string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("nvmetcp: %s (fatal error status %#x, information %#x)", e.Msg, e.FES, e.FEI)
}

func protoErr(fes uint16, fei uint32, format string, args ...any) *ProtocolError {
	return &ProtocolError{FES: fes, FEI: fei, Msg: fmt.Sprintf(format, args...)}
}

// DataDigestError means a PDU's data did not match its data digest. It is not fatal to
// the connection: the command the data belongs to fails (Transient Transport Error).
type DataDigestError struct {
	Type      PDUType
	Got, Want uint32
}

func (e *DataDigestError) Error() string {
	return fmt.Sprintf("nvmetcp: %s data digest %#08x, computed %#08x", e.Type, e.Got, e.Want)
}

// Header is one parsed PDU header. CH says which of the PDU-specific fields is valid.
// A Reader reuses one Header for every PDU, so parsing allocates nothing.
type Header struct {
	CH          CommonHeader
	ICReq       ICReq
	ICResp      ICResp
	TermReq     TermReq
	CapsuleCmd  CapsuleCmd
	CapsuleResp CapsuleResp
	H2CData     H2CData
	C2HData     C2HData
	R2T         R2T

	// HeaderBytes is HLEN plus the header digest: what precedes any padding.
	HeaderBytes int
	// DataOffset is where the data starts (PDO, or HLEN for TermReqs); DataLen the
	// bytes of data without padding or digest; DataDigest whether a digest follows it.
	DataOffset int
	DataLen    int
	DataDigest bool
}

// CheckCommonHeader validates the 8-byte common header in ch for a connection with the
// given digests and returns how many header bytes (HLEN plus any header digest) the
// PDU has, so a stream reader knows how much more to read. maxData bounds the data of
// one PDU. It never panics: bad input is a *ProtocolError.
func CheckCommonHeader(ch []byte, d Digests, maxData int) (int, error) {
	if len(ch) < CHSize {
		return 0, protoErr(FESInvalidHeaderField, 0, "truncated common header (%d bytes)", len(ch))
	}
	var h CommonHeader
	h.unmarshal(ch)
	hlen, ok := headerLen(h.Type)
	if !ok {
		return 0, protoErr(FESInvalidHeaderField, 0, "unknown PDU type %#02x", uint8(h.Type))
	}
	if int(h.HLEN) != hlen {
		return 0, protoErr(FESInvalidHeaderField, 2, "%s HLEN %d, want %d", h.Type, h.HLEN, hlen)
	}
	total := hlen
	if hasDigests(h.Type) {
		if (h.Flags&FlagHDGST != 0) != d.Header {
			return 0, protoErr(FESInvalidHeaderField, 1, "%s HDGSTF is %t but header digests are %s",
				h.Type, h.Flags&FlagHDGST != 0, onOff(d.Header))
		}
		if d.Header {
			total += DigestSize
		}
	} else if h.Flags&(FlagHDGST|FlagDDGST) != 0 {
		return 0, protoErr(FESInvalidHeaderField, 1, "%s must not carry digests (flags %#02x)", h.Type, h.Flags)
	}
	if int64(h.PLEN) < int64(total) {
		return 0, protoErr(FESInvalidHeaderField, 4, "%s PLEN %d is shorter than its header (%d)", h.Type, h.PLEN, total)
	}
	// Longest legal PDU: header, alignment padding (up to 128 bytes), data, digest.
	if maxData < 0 {
		maxData = 0
	}
	if int64(h.PLEN) > int64(total)+128+int64(maxData)+DigestSize {
		return 0, protoErr(FESInvalidHeaderField, 4, "%s PLEN %d exceeds the largest PDU accepted (%d bytes of data)",
			h.Type, h.PLEN, maxData)
	}
	if !mayCarryData(h.Type) && int(h.PLEN) != total {
		return 0, protoErr(FESInvalidHeaderField, 4, "%s PLEN %d, want %d (it has no data)", h.Type, h.PLEN, total)
	}
	return total, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// ParseHeader parses a whole PDU header (b holds at least the length CheckCommonHeader
// returned) into h: it checks the header digest and every header field a receiver can
// check on its own, and sets h's data layout. It never panics.
func ParseHeader(b []byte, d Digests, maxData int, h *Header) error {
	total, err := CheckCommonHeader(b, d, maxData)
	if err != nil {
		return err
	}
	if len(b) < total {
		return protoErr(FESInvalidHeaderField, 4, "truncated header: %d of %d bytes", len(b), total)
	}
	h.CH.unmarshal(b)
	hlen := int(h.CH.HLEN)
	h.HeaderBytes = total
	if total > hlen {
		want := CRC32C(b[:hlen])
		if got := binary.LittleEndian.Uint32(b[hlen:]); got != want {
			return protoErr(FESHeaderDigestError, 0, "%s header digest %#08x, computed %#08x", h.CH.Type, got, want)
		}
	}
	// Data layout.
	h.DataOffset, h.DataLen, h.DataDigest = 0, 0, false
	plen := int64(h.CH.PLEN)
	switch {
	case h.CH.Type == TypeH2CTermReq || h.CH.Type == TypeC2HTermReq:
		h.DataOffset = hlen
		h.DataLen = int(plen) - hlen
		if h.DataLen > MaxTermReqData {
			return protoErr(FESInvalidHeaderField, 4, "%s carries %d bytes of data, at most %d", h.CH.Type, h.DataLen, MaxTermReqData)
		}
	case mayCarryData(h.CH.Type) && plen > int64(total):
		pdo := int64(h.CH.PDO)
		if pdo < int64(total) {
			return protoErr(FESInvalidHeaderField, 3, "%s PDO %d overlaps its header (%d bytes)", h.CH.Type, pdo, total)
		}
		h.DataDigest = d.Data
		ddg := int64(0)
		if d.Data {
			ddg = DigestSize
		}
		if (h.CH.Flags&FlagDDGST != 0) != d.Data {
			return protoErr(FESInvalidHeaderField, 1, "%s DDGSTF is %t but data digests are %s",
				h.CH.Type, h.CH.Flags&FlagDDGST != 0, onOff(d.Data))
		}
		n := plen - pdo - ddg
		if n <= 0 {
			return protoErr(FESInvalidHeaderField, 3, "%s PDO %d leaves no data in PLEN %d", h.CH.Type, pdo, plen)
		}
		if n > int64(maxData) {
			return protoErr(FESDataOutOfRange, 4, "%s carries %d bytes of data, at most %d accepted", h.CH.Type, n, maxData)
		}
		h.DataOffset, h.DataLen = int(pdo), int(n)
	default:
		if h.CH.Flags&FlagDDGST != 0 {
			return protoErr(FESInvalidHeaderField, 1, "%s has no data but DDGSTF is set", h.CH.Type)
		}
	}
	le := binary.LittleEndian
	switch h.CH.Type {
	case TypeICReq:
		r := &h.ICReq
		r.CH = h.CH
		r.PFV, r.HPDA, r.DGST, r.MAXR2T = le.Uint16(b[8:]), b[10], b[11], le.Uint32(b[12:])
		if r.PFV != 0 {
			return protoErr(FESUnsupportedParameter, 8, "ICReq PFV %d, only 0 is supported", r.PFV)
		}
		if r.HPDA > MaxPDA {
			return protoErr(FESInvalidHeaderField, 10, "ICReq HPDA %d, at most %d", r.HPDA, MaxPDA)
		}
	case TypeICResp:
		r := &h.ICResp
		r.CH = h.CH
		r.PFV, r.CPDA, r.DGST, r.MAXH2CDATA = le.Uint16(b[8:]), b[10], b[11], le.Uint32(b[12:])
		if r.PFV != 0 {
			return protoErr(FESUnsupportedParameter, 8, "ICResp PFV %d, only 0 is supported", r.PFV)
		}
		if r.CPDA > MaxPDA {
			return protoErr(FESInvalidHeaderField, 10, "ICResp CPDA %d, at most %d", r.CPDA, MaxPDA)
		}
		if r.MAXH2CDATA < MinMaxH2CData || r.MAXH2CDATA%4 != 0 {
			return protoErr(FESInvalidHeaderField, 12, "ICResp MAXH2CDATA %d: must be a multiple of 4 and at least %d", r.MAXH2CDATA, MinMaxH2CData)
		}
	case TypeH2CTermReq, TypeC2HTermReq:
		r := &h.TermReq
		r.CH = h.CH
		r.FES = le.Uint16(b[8:])
		copy(r.FEI[:], b[10:14])
	case TypeCapsuleCmd:
		h.CapsuleCmd.CH = h.CH
		unmarshalSQE(b[CHSize:], &h.CapsuleCmd.SQE)
	case TypeCapsuleResp:
		h.CapsuleResp.CH = h.CH
		unmarshalCQE(b[CHSize:], &h.CapsuleResp.CQE)
	case TypeH2CData, TypeC2HData:
		cccid, ttag, datao, datal := le.Uint16(b[8:]), le.Uint16(b[10:]), le.Uint32(b[12:]), le.Uint32(b[16:])
		if int64(datal) != int64(h.DataLen) {
			return protoErr(FESInvalidHeaderField, 16, "%s DATAL %d but the PDU holds %d bytes of data", h.CH.Type, datal, h.DataLen)
		}
		if datal == 0 {
			return protoErr(FESInvalidHeaderField, 16, "%s carries no data", h.CH.Type)
		}
		if h.CH.Type == TypeH2CData {
			h.H2CData = H2CData{CH: h.CH, CCCID: cccid, TTAG: ttag, DATAO: datao, DATAL: datal}
		} else {
			if h.CH.Flags&FlagSuccess != 0 && h.CH.Flags&FlagLastPDU == 0 {
				return protoErr(FESInvalidHeaderField, 1, "C2HData SUCCESS without LAST_PDU")
			}
			h.C2HData = C2HData{CH: h.CH, CCCID: cccid, DATAO: datao, DATAL: datal}
		}
	case TypeR2T:
		h.R2T = R2T{CH: h.CH, CCCID: le.Uint16(b[8:]), TTAG: le.Uint16(b[10:]),
			R2TO: le.Uint32(b[12:]), R2TL: le.Uint32(b[16:])}
		if h.R2T.R2TL == 0 {
			return protoErr(FESInvalidHeaderField, 16, "R2T of zero bytes")
		}
	}
	return nil
}

// ParsePDU parses one whole PDU held in b: the header as ParseHeader does, then the
// data and its digest. It returns the data (a sub-slice of b) and the PDU's length. A
// data digest mismatch is returned as *DataDigestError with h and data valid. It never
// panics, whatever b holds.
func ParsePDU(b []byte, d Digests, maxData int, h *Header) (data []byte, n int, err error) {
	if err := ParseHeader(b, d, maxData, h); err != nil {
		return nil, 0, err
	}
	plen := int(h.CH.PLEN)
	if len(b) < plen {
		return nil, 0, protoErr(FESInvalidHeaderField, 4, "truncated PDU: %d of %d bytes", len(b), plen)
	}
	if h.DataLen == 0 {
		return nil, plen, nil
	}
	data = b[h.DataOffset : h.DataOffset+h.DataLen]
	if h.DataDigest {
		got := binary.LittleEndian.Uint32(b[h.DataOffset+h.DataLen:])
		if want := CRC32C(data); got != want {
			return data, plen, &DataDigestError{Type: h.CH.Type, Got: got, Want: want}
		}
	}
	return data, plen, nil
}

// SQEData describes where a command's data comes from, from its SGL descriptor.
type SQEData struct {
	Length    uint32
	InCapsule bool // the data is in the command capsule (SGL data block, offset subtype)
}

// CommandData reads a fabrics command's data descriptor (TCP 1.0, "Capsules" and
// NVMe Base 2.0 SGLs: in-capsule data uses a Data Block descriptor with the Offset subtype, data moved by
// R2T/H2CData or C2HData a Transport Data Block descriptor with the Transport subtype).
func CommandData(c *spec.Command) (SQEData, error) {
	if c.PSDT() != 1 {
		if c.PSDT() == 0 && c.PRP1 == 0 && c.PRP2 == 0 {
			return SQEData{}, nil // no data
		}
		return SQEData{}, fmt.Errorf("PSDT %d: NVMe/TCP commands use SGLs (PSDT 1)", c.PSDT())
	}
	sgl := c.SGL()
	switch {
	case sgl.Type() == spec.SGLTypeDataBlock && sgl.Subtype() == spec.SGLSubtypeOffset:
		if sgl.Address != 0 {
			return SQEData{}, fmt.Errorf("in-capsule data offset %d: only 0 is supported (ICDOFF 0)", sgl.Address)
		}
		return SQEData{Length: sgl.Length, InCapsule: true}, nil
	case sgl.Type() == spec.SGLTypeTransportDataBlock && sgl.Subtype() == spec.SGLSubtypeTransport:
		return SQEData{Length: sgl.Length}, nil
	}
	return SQEData{}, fmt.Errorf("SGL descriptor type %#x subtype %#x is not one NVMe/TCP uses", sgl.Type(), sgl.Subtype())
}

// SetCommandData sets c's SGL descriptor for n bytes of data, in the capsule or moved
// by the transport.
func SetCommandData(c *spec.Command, n uint32, inCapsule bool) {
	id := spec.MakeSGLID(spec.SGLTypeTransportDataBlock, spec.SGLSubtypeTransport)
	if inCapsule {
		id = spec.MakeSGLID(spec.SGLTypeDataBlock, spec.SGLSubtypeOffset)
	}
	c.SetSGL(spec.SGLDescriptor{Length: n, ID: id})
}
