// Package nvmetcp is the NVMe/TCP transport binding (NVM Express TCP Transport
// Specification 1.0, "TCP 1.0"): the PDU ABI, header and data digests, and a PDU reader
// and writer over a byte stream that allocate nothing per PDU. The `nvmeperf serve`
// target (package serve) is built on it; the host transport (trtype:TCP) will be too.
//
// Every PDU starts with an 8-byte common header (CH), followed by a PDU-specific header
// (PSH); HLEN covers both. When header digests are negotiated a 4-byte CRC32C of the
// header follows it (HDGST). Data, if any, starts PDO bytes from the start of the PDU
// (after zero padding that aligns it as the receiver asked with HPDA/CPDA) and, when
// data digests are negotiated, is followed by its CRC32C (DDGST). PLEN is the total.
package nvmetcp

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// PDUType is the PDU-Type field of the common header (TCP 1.0, section 3.6.1).
type PDUType uint8

// PDU types.
const (
	TypeICReq       PDUType = 0x00
	TypeICResp      PDUType = 0x01
	TypeH2CTermReq  PDUType = 0x02
	TypeC2HTermReq  PDUType = 0x03
	TypeCapsuleCmd  PDUType = 0x04
	TypeCapsuleResp PDUType = 0x05
	TypeH2CData     PDUType = 0x06
	TypeC2HData     PDUType = 0x07
	TypeR2T         PDUType = 0x09
)

func (t PDUType) String() string {
	switch t {
	case TypeICReq:
		return "ICReq"
	case TypeICResp:
		return "ICResp"
	case TypeH2CTermReq:
		return "H2CTermReq"
	case TypeC2HTermReq:
		return "C2HTermReq"
	case TypeCapsuleCmd:
		return "CapsuleCmd"
	case TypeCapsuleResp:
		return "CapsuleResp"
	case TypeH2CData:
		return "H2CData"
	case TypeC2HData:
		return "C2HData"
	case TypeR2T:
		return "R2T"
	}
	return fmt.Sprintf("PDU type %#02x", uint8(t))
}

// Common header flags (TCP 1.0, section 3.6.1; the data flags from sections 3.6.2.8-9).
const (
	FlagHDGST   = 0x01 // a header digest follows the header
	FlagDDGST   = 0x02 // a data digest follows the data
	FlagLastPDU = 0x04 // H2CData/C2HData: last data PDU of the transfer (or R2T)
	FlagSuccess = 0x08 // C2HData: the command succeeded; no CapsuleResp follows
)

// Header lengths (HLEN) of each PDU type, and sizes around them.
const (
	CHSize          = 8
	ICReqSize       = 128
	ICRespSize      = 128
	TermReqHdrSize  = 24
	CapsuleCmdSize  = CHSize + spec.SQESize // 72
	CapsuleRespSize = CHSize + spec.CQESize // 24
	DataHdrSize     = 24                    // H2CData, C2HData
	R2TSize         = 24
	DigestSize      = 4
	// MaxHeaderSize is the largest HLEN plus a header digest.
	MaxHeaderSize = ICReqSize + DigestSize
	// MaxTermReqData is the most data a C2HTermReq carries (the PDU header in error,
	// TCP 1.0 section 3.6.2.4); H2CTermReq carries at most 128 bytes.
	MaxTermReqData = 152 - TermReqHdrSize
	// MaxPDA is the largest HPDA/CPDA: data aligned to (PDA+1)*4 = 128 bytes.
	MaxPDA = 31
	// MinMaxH2CData is the smallest MAXH2CDATA a controller may advertise (TCP 1.0,
	// section 3.6.2.3).
	MinMaxH2CData = 4096
)

// CommonHeader is the common header of every PDU (TCP 1.0, section 3.6.1).
type CommonHeader struct {
	Type  PDUType // 0: PDU-Type
	Flags uint8   // 1: FlagHDGST, FlagDDGST, type-specific flags
	HLEN  uint8   // 2: header length: CH + PSH, without HDGST
	PDO   uint8   // 3: PDU data offset from the start of the PDU; 0 without data
	PLEN  uint32  // 4: total PDU length including digests and padding
}

var _ [CHSize]byte = [unsafe.Sizeof(CommonHeader{})]byte{}

func (h *CommonHeader) marshal(b []byte) {
	b[0], b[1], b[2], b[3] = byte(h.Type), h.Flags, h.HLEN, h.PDO
	binary.LittleEndian.PutUint32(b[4:], h.PLEN)
}

func (h *CommonHeader) unmarshal(b []byte) {
	h.Type, h.Flags, h.HLEN, h.PDO = PDUType(b[0]), b[1], b[2], b[3]
	h.PLEN = binary.LittleEndian.Uint32(b[4:])
}

// Digest bits of ICReq/ICResp DGST (TCP 1.0, sections 3.6.2.2 and 3.6.2.3).
const (
	DigestHeader = 0x01 // HDGST_ENABLE
	DigestData   = 0x02 // DDGST_ENABLE
)

// ICReq is the Initialize Connection Request PDU (TCP 1.0, section 3.6.2.2).
type ICReq struct {
	CH     CommonHeader // 0
	PFV    uint16       // 8: PDU format version, 0
	HPDA   uint8        // 10: host PDU data alignment: C2H data at (HPDA+1)*4
	DGST   uint8        // 11: DigestHeader | DigestData requested
	MAXR2T uint32       // 12: most outstanding R2Ts per command, 0's based
	_      [112]byte    // 16
}

var _ [ICReqSize]byte = [unsafe.Sizeof(ICReq{})]byte{}

// ICResp is the Initialize Connection Response PDU (TCP 1.0, section 3.6.2.3).
type ICResp struct {
	CH         CommonHeader // 0
	PFV        uint16       // 8
	CPDA       uint8        // 10: controller PDU data alignment: H2C data at (CPDA+1)*4
	DGST       uint8        // 11: digests enabled
	MAXH2CDATA uint32       // 12: largest H2CData payload, ≥ 4096, a multiple of 4
	_          [112]byte    // 16
}

var _ [ICRespSize]byte = [unsafe.Sizeof(ICResp{})]byte{}

// Fatal error status of a TermReq (TCP 1.0, sections 3.6.2.4 and 3.6.2.5).
const (
	FESInvalidHeaderField   = 0x01
	FESPDUSequenceError     = 0x02
	FESHeaderDigestError    = 0x03
	FESDataOutOfRange       = 0x04
	FESLimitExceeded        = 0x05 // C2HTermReq: R2T limit exceeded; H2CTermReq: data transfer limit exceeded
	FESUnsupportedParameter = 0x06
)

// TermReq is the H2CTermReq and C2HTermReq PDU header (TCP 1.0, sections 3.6.2.4 and
// 3.6.2.5). The data is the header of the PDU in error. TermReqs
// never carry digests.
type TermReq struct {
	CH  CommonHeader // 0
	FES uint16       // 8: fatal error status
	FEI [4]byte      // 10: fatal error information (byte offset of the bad field, or the bad PLEN/parameter), little-endian, unaligned
	_   [10]byte     // 14
}

var _ [TermReqHdrSize]byte = [unsafe.Sizeof(TermReq{})]byte{}

// Info is FEI as a number.
func (t *TermReq) Info() uint32 { return binary.LittleEndian.Uint32(t.FEI[:]) }

// CapsuleCmd is the Command Capsule PDU header (TCP 1.0, section 3.6.2.6):
// the SQE, then optional in-capsule data.
type CapsuleCmd struct {
	CH  CommonHeader // 0
	SQE spec.Command // 8
}

var _ [CapsuleCmdSize]byte = [unsafe.Sizeof(CapsuleCmd{})]byte{}

// CapsuleResp is the Response Capsule PDU (TCP 1.0, section 3.6.2.7).
type CapsuleResp struct {
	CH  CommonHeader    // 0
	CQE spec.Completion // 8
}

var _ [CapsuleRespSize]byte = [unsafe.Sizeof(CapsuleResp{})]byte{}

// H2CData is the Host to Controller Data PDU header (TCP 1.0, section 3.6.2.8).
type H2CData struct {
	CH    CommonHeader // 0
	CCCID uint16       // 8: command capsule CID
	TTAG  uint16       // 10: the transfer tag of the R2T being answered
	DATAO uint32       // 12: offset of this data in the command's data
	DATAL uint32       // 16: bytes of data in this PDU
	_     [4]byte      // 20
}

var _ [DataHdrSize]byte = [unsafe.Sizeof(H2CData{})]byte{}

// C2HData is the Controller to Host Data PDU header (TCP 1.0, section 3.6.2.9).
type C2HData struct {
	CH    CommonHeader // 0: flags FlagLastPDU, FlagSuccess
	CCCID uint16       // 8
	_     uint16       // 10
	DATAO uint32       // 12
	DATAL uint32       // 16
	_     [4]byte      // 20
}

var _ [DataHdrSize]byte = [unsafe.Sizeof(C2HData{})]byte{}

// R2T is the Ready to Transfer PDU (TCP 1.0, section 3.6.2.10).
type R2T struct {
	CH    CommonHeader // 0
	CCCID uint16       // 8
	TTAG  uint16       // 10: controller's tag, echoed in the H2CData PDUs
	R2TO  uint32       // 12: offset of the requested data
	R2TL  uint32       // 16: length of the requested data
	_     [4]byte      // 20
}

var _ [R2TSize]byte = [unsafe.Sizeof(R2T{})]byte{}

// headerLen is the HLEN each PDU type must have.
func headerLen(t PDUType) (int, bool) {
	switch t {
	case TypeICReq:
		return ICReqSize, true
	case TypeICResp:
		return ICRespSize, true
	case TypeH2CTermReq, TypeC2HTermReq:
		return TermReqHdrSize, true
	case TypeCapsuleCmd:
		return CapsuleCmdSize, true
	case TypeCapsuleResp:
		return CapsuleRespSize, true
	case TypeH2CData, TypeC2HData:
		return DataHdrSize, true
	case TypeR2T:
		return R2TSize, true
	}
	return 0, false
}

// hasDigests reports whether a PDU type carries digests when they are negotiated: the
// connection setup and termination PDUs never do.
func hasDigests(t PDUType) bool {
	switch t {
	case TypeICReq, TypeICResp, TypeH2CTermReq, TypeC2HTermReq:
		return false
	}
	return true
}

// mayCarryData reports whether a PDU type may have a data part.
func mayCarryData(t PDUType) bool {
	switch t {
	case TypeCapsuleCmd, TypeH2CData, TypeC2HData, TypeH2CTermReq, TypeC2HTermReq:
		return true
	}
	return false
}

func marshalSQE(b []byte, c *spec.Command) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], c.CDW0)
	le.PutUint32(b[4:], c.NSID)
	le.PutUint32(b[8:], c.CDW2)
	le.PutUint32(b[12:], c.CDW3)
	le.PutUint64(b[16:], c.MPTR)
	le.PutUint64(b[24:], c.PRP1)
	le.PutUint64(b[32:], c.PRP2)
	le.PutUint32(b[40:], c.CDW10)
	le.PutUint32(b[44:], c.CDW11)
	le.PutUint32(b[48:], c.CDW12)
	le.PutUint32(b[52:], c.CDW13)
	le.PutUint32(b[56:], c.CDW14)
	le.PutUint32(b[60:], c.CDW15)
}

func unmarshalSQE(b []byte, c *spec.Command) {
	le := binary.LittleEndian
	c.CDW0 = le.Uint32(b[0:])
	c.NSID = le.Uint32(b[4:])
	c.CDW2 = le.Uint32(b[8:])
	c.CDW3 = le.Uint32(b[12:])
	c.MPTR = le.Uint64(b[16:])
	c.PRP1 = le.Uint64(b[24:])
	c.PRP2 = le.Uint64(b[32:])
	c.CDW10 = le.Uint32(b[40:])
	c.CDW11 = le.Uint32(b[44:])
	c.CDW12 = le.Uint32(b[48:])
	c.CDW13 = le.Uint32(b[52:])
	c.CDW14 = le.Uint32(b[56:])
	c.CDW15 = le.Uint32(b[60:])
}

func marshalCQE(b []byte, c *spec.Completion) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], c.DW0)
	le.PutUint32(b[4:], c.DW1)
	le.PutUint16(b[8:], c.SQHD)
	le.PutUint16(b[10:], c.SQID)
	le.PutUint16(b[12:], c.CID)
	le.PutUint16(b[14:], c.Status)
}

func unmarshalCQE(b []byte, c *spec.Completion) {
	le := binary.LittleEndian
	c.DW0 = le.Uint32(b[0:])
	c.DW1 = le.Uint32(b[4:])
	c.SQHD = le.Uint16(b[8:])
	c.SQID = le.Uint16(b[10:])
	c.CID = le.Uint16(b[12:])
	c.Status = le.Uint16(b[14:])
}
