package spec

import "unsafe"

// Entry sizes and their log2 values as CC.IOSQES / CC.IOCQES expect them.
const (
	SQESize    = 64
	CQESize    = 16
	SQESizeLog = 6
	CQESizeLog = 4
)

// Command is a submission queue entry (NVMe Base 2.0, figure 88 "Common Command Format").
type Command struct {
	CDW0  uint32 // OPC 7:0, FUSE 9:8, PSDT 15:14, CID 31:16
	NSID  uint32
	CDW2  uint32
	CDW3  uint32
	MPTR  uint64 // metadata pointer
	PRP1  uint64 // data pointer: PRP entry 1 (or SGL descriptor bytes 0-7)
	PRP2  uint64 // PRP entry 2 or PRP list pointer
	CDW10 uint32
	CDW11 uint32
	CDW12 uint32
	CDW13 uint32
	CDW14 uint32
	CDW15 uint32
}

var _ [SQESize]byte = [unsafe.Sizeof(Command{})]byte{}

// Opcode is the command opcode (CDW0 bits 7:0).
func (c *Command) Opcode() uint8 { return uint8(c.CDW0) }

// CID is the command identifier (CDW0 bits 31:16).
func (c *Command) CID() uint16 { return uint16(c.CDW0 >> 16) }

// PSDT is PRP or SGL for Data Transfer (CDW0 bits 15:14); nvmeperf always uses 0 (PRPs).
func (c *Command) PSDT() uint8 { return uint8(c.CDW0>>14) & 0x3 }

// SetOpcodeCID sets CDW0 to the opcode and command identifier with FUSE=0 and PSDT=0.
func (c *Command) SetOpcodeCID(opc uint8, cid uint16) { c.CDW0 = uint32(opc) | uint32(cid)<<16 }

// SetCID replaces the command identifier, keeping the rest of CDW0.
func (c *Command) SetCID(cid uint16) { c.CDW0 = c.CDW0&0xFFFF | uint32(cid)<<16 }

// SLBA is the starting LBA of an NVM read/write-like command (CDW10/CDW11).
func (c *Command) SLBA() uint64 { return uint64(c.CDW10) | uint64(c.CDW11)<<32 }

// NLB is the number of logical blocks of an NVM read/write-like command, 1-based
// (the field in CDW12 bits 15:0 is 0's based).
func (c *Command) NLB() uint32 { return uint32(uint16(c.CDW12)) + 1 }

// SetLBARange sets SLBA and NLB (nlb is 1-based and at most 65536).
func (c *Command) SetLBARange(slba uint64, nlb uint32) {
	c.CDW10 = uint32(slba)
	c.CDW11 = uint32(slba >> 32)
	c.CDW12 = c.CDW12&0xFFFF0000 | (nlb-1)&0xFFFF
}

// Completion is a completion queue entry (NVMe Base 2.0, figure 89 "Common Completion Queue Entry").
type Completion struct {
	DW0    uint32 // command specific
	DW1    uint32 // command specific
	SQHD   uint16 // SQ head pointer
	SQID   uint16 // SQ identifier
	CID    uint16 // command identifier
	Status uint16 // P bit 0, then the status field (SC, SCT, CRD, M, DNR)
}

var _ [CQESize]byte = [unsafe.Sizeof(Completion{})]byte{}

// Phase is the phase tag (bit 0 of the status word).
func (c *Completion) Phase() bool { return c.Status&1 == 1 }

// StatusField is the status without the phase tag.
func (c *Completion) StatusField() Status { return Status(c.Status >> 1) }

// Status is the 15-bit status field of a completion (NVMe Base 2.0, figure 92):
// SC bits 7:0, SCT bits 10:8, CRD bits 12:11, M bit 13, DNR bit 14.
type Status uint16

// StatusSuccess is the zero status.
const StatusSuccess Status = 0

// MakeStatus builds a status from its type and code.
func MakeStatus(sct StatusCodeType, sc uint8) Status { return Status(uint16(sct&0x7)<<8 | uint16(sc)) }

// SC is the status code.
func (s Status) SC() uint8 { return uint8(s) }

// SCT is the status code type.
func (s Status) SCT() StatusCodeType { return StatusCodeType(s>>8) & 0x7 }

// DNR is Do Not Retry.
func (s Status) DNR() bool { return s>>14&1 == 1 }

// More means more status information is in the Error Information log page.
func (s Status) More() bool { return s>>13&1 == 1 }

// WithDNR returns s with Do Not Retry set.
func (s Status) WithDNR() Status { return s | 1<<14 }

// OK reports success.
func (s Status) OK() bool { return s.SCT() == SCTGeneric && s.SC() == 0 }

// DSMRangeSize is the number of bytes a Dataset Management range occupies.
const DSMRangeSize = 16

// DSMRange is one Dataset Management range (NVM Command Set 1.0, figure 39).
type DSMRange struct {
	Attributes uint32 // context attributes
	NLB        uint32 // length in logical blocks
	SLBA       uint64 // starting LBA
}

var _ [DSMRangeSize]byte = [unsafe.Sizeof(DSMRange{})]byte{}
