package spec

import (
	"encoding/binary"
	"unsafe"
)

// CRD is the Command Retry Delay field of a status (bits 12:11 of the status field;
// NVMe Base 2.0, figure 92): 0 means retry at once, 1 to 3 select Identify Controller's
// CRDT1 to CRDT3.
func (s Status) CRD() uint8 { return uint8(s>>11) & 0x3 }

// WithCRD returns s with its Command Retry Delay field set to crd (0 to 3).
func (s Status) WithCRD(crd uint8) Status { return s&^(0x3<<11) | Status(crd&0x3)<<11 }

// Identify Controller CRDT1..CRDT3: command retry delay times in units of 100 ms, at
// bytes 134, 136 and 138 (NVMe Base 2.0, figure 275). They sit in the reserved block of
// IdentifyController, so they are read and written by offset.
const identifyCRDTOffset = 134

// CRDT returns Command Retry Delay Time n (1 to 3) in units of 100 ms; 0 for another n.
func (id *IdentifyController) CRDT(n int) uint16 {
	if n < 1 || n > 3 {
		return 0
	}
	return binary.LittleEndian.Uint16(id.bytes()[identifyCRDTOffset+2*(n-1):])
}

// SetCRDT sets Command Retry Delay Time n (1 to 3) to v units of 100 ms.
func (id *IdentifyController) SetCRDT(n int, v uint16) {
	if n < 1 || n > 3 {
		return
	}
	binary.LittleEndian.PutUint16(id.bytes()[identifyCRDTOffset+2*(n-1):], v)
}

func (id *IdentifyController) bytes() []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(id)), IdentifyDataSize)
}

// ErrorLogEntry is one entry of the Error Information log page (log 01h; NVMe Base 2.0,
// figure 206).
type ErrorLogEntry struct {
	ErrorCount     uint64   // 0: unique, increasing; 0 = empty entry
	SQID           uint16   // 8
	CID            uint16   // 10
	Status         uint16   // 12: status field (bits 15:1) and phase tag (bit 0)
	ParamErrorLoc  uint16   // 14
	LBA            uint64   // 16
	NSID           uint32   // 24
	VendorInfo     uint8    // 28
	TRType         uint8    // 29
	_              [2]byte  // 30
	CmdSpecific    uint64   // 32
	TRTypeSpecific uint16   // 40
	_              [22]byte // 42
}

// ErrorLogEntrySize is the size of one Error Information log entry.
const ErrorLogEntrySize = 64

var _ [ErrorLogEntrySize]byte = [unsafe.Sizeof(ErrorLogEntry{})]byte{}

// StatusField is the entry's status without the phase tag.
func (e *ErrorLogEntry) StatusField() Status { return Status(e.Status >> 1) }

// WithMore returns s with its More bit set: the Error Information log has more about
// the command.
func (s Status) WithMore() Status { return s | 1<<13 }
