package spec

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// End-to-end data protection (NVM Command Set 1.0, section 5.2 "End-to-end Data
// Protection"; the 8-byte tuple is T10 DIF's). nvmeperf drives the 16-bit guard format
// only: the Identify Namespace data it reads has no extended LBA formats.

// Protection information types (Identify Namespace DPS bits 2:0).
const (
	PINone  = 0
	PIType1 = 1
	PIType2 = 2
	PIType3 = 3
)

// Identify Namespace DPS, DPC and MC bits.
const (
	DPSTypeMask = 0x7    // protection information type enabled
	DPSFirst    = 1 << 3 // PI is the first 8 bytes of metadata (else the last)

	DPCType1 = 1 << 0 // type 1 supported
	DPCType2 = 1 << 1
	DPCType3 = 1 << 2
	DPCFirst = 1 << 3 // PI in the first 8 bytes of metadata supported
	DPCLast  = 1 << 4 // PI in the last 8 bytes of metadata supported

	MCExtended = 1 << 0 // metadata as part of an extended data LBA supported
	MCSeparate = 1 << 1 // metadata in a separate buffer supported
)

// PRINFO bits of Read/Write CDW12 (bits 29:26): PRACT and the three PRCHK bits.
const (
	RWPRACT       = 1 << 29 // protection information action: insert/strip
	RWPRCHKGuard  = 1 << 28 // check the guard
	RWPRCHKAppTag = 1 << 27 // check the application tag
	RWPRCHKRefTag = 1 << 26 // check the reference tag
	RWPRCHKShift  = 26
	RWPRCHKMask   = 0x7 << RWPRCHKShift
)

// PISize is the size of the protection information tuple in metadata.
const PISize = 8

// PI is one protection information tuple. On the wire every field is big-endian:
// guard (bytes 0-1), application tag (2-3), reference tag (4-7).
type PI struct {
	Guard  uint16
	AppTag uint16
	RefTag uint32
}

// GetPI reads the tuple at the start of b (at least 8 bytes).
func GetPI(b []byte) PI {
	return PI{
		Guard:  binary.BigEndian.Uint16(b[0:]),
		AppTag: binary.BigEndian.Uint16(b[2:]),
		RefTag: binary.BigEndian.Uint32(b[4:]),
	}
}

// PutPI writes pi at the start of b (at least 8 bytes).
func PutPI(b []byte, pi PI) {
	binary.BigEndian.PutUint16(b[0:], pi.Guard)
	binary.BigEndian.PutUint16(b[2:], pi.AppTag)
	binary.BigEndian.PutUint32(b[4:], pi.RefTag)
}

// PIEscaped reports whether pi disables checking: an application tag of FFFFh for
// types 1 and 2, and additionally a reference tag of FFFFFFFFh for type 3.
func PIEscaped(piType uint8, pi PI) bool {
	if pi.AppTag != 0xFFFF {
		return false
	}
	return piType != PIType3 || pi.RefTag == 0xFFFFFFFF
}

// PIField names the tuple field a check failed on.
type PIField uint8

// Tuple fields, in the order they are checked.
const (
	PIGuard PIField = iota + 1
	PIAppTag
	PIRefTag
)

func (f PIField) String() string {
	switch f {
	case PIGuard:
		return "guard"
	case PIAppTag:
		return "application tag"
	case PIRefTag:
		return "reference tag"
	}
	return fmt.Sprintf("PI field %d", uint8(f))
}

// Status is the end-to-end check error status for the field (SCT 2h, 82h-84h).
func (f PIField) Status() Status {
	switch f {
	case PIGuard:
		return MakeStatus(SCTMediaDataIntegrity, SCGuardCheckError)
	case PIAppTag:
		return MakeStatus(SCTMediaDataIntegrity, SCApplicationTagError)
	}
	return MakeStatus(SCTMediaDataIntegrity, SCReferenceTagError)
}

// CheckPI compares got with want on the fields prchk selects (CDW12 PRCHK bits, already
// shifted down: bit 2 guard, bit 1 application tag under appMask, bit 0 reference tag)
// and returns the first that differs, or 0. Escaped tuples (PIEscaped) always pass;
// type 3 has no reference tag check.
func CheckPI(piType uint8, prchk uint8, appMask uint16, got, want PI) PIField {
	if PIEscaped(piType, got) {
		return 0
	}
	switch {
	case prchk&(RWPRCHKGuard>>RWPRCHKShift) != 0 && got.Guard != want.Guard:
		return PIGuard
	case prchk&(RWPRCHKAppTag>>RWPRCHKShift) != 0 && got.AppTag&appMask != want.AppTag&appMask:
		return PIAppTag
	case prchk&(RWPRCHKRefTag>>RWPRCHKShift) != 0 && piType != PIType3 && got.RefTag != want.RefTag:
		return PIRefTag
	}
	return 0
}

// CRC16T10DIF is the guard: CRC-16 with polynomial 8BB7h, initial value 0, no
// reflection and no final XOR (T10 DIF). crc is the value so far (0 to start), so a
// block held in pieces can be summed piece by piece.
func CRC16T10DIF(crc uint16, b []byte) uint16 {
	for len(b) >= 8 {
		// Slicing by 8: eight table lookups per 8 bytes.
		hi := uint16(b[0])<<8 | uint16(b[1])
		hi ^= crc
		crc = crcT10[7][hi>>8] ^ crcT10[6][hi&0xFF] ^
			crcT10[5][b[2]] ^ crcT10[4][b[3]] ^ crcT10[3][b[4]] ^
			crcT10[2][b[5]] ^ crcT10[1][b[6]] ^ crcT10[0][b[7]]
		b = b[8:]
	}
	for _, c := range b {
		crc = crc<<8 ^ crcT10[0][byte(crc>>8)^c]
	}
	return crc
}

var crcT10 = func() (t [8][256]uint16) {
	const poly = 0x8BB7
	for i := 0; i < 256; i++ {
		crc := uint16(i) << 8
		for j := 0; j < 8; j++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ poly
			} else {
				crc <<= 1
			}
		}
		t[0][i] = crc
	}
	for i := 0; i < 256; i++ {
		crc := t[0][i]
		for k := 1; k < 8; k++ {
			crc = crc<<8 ^ t[0][crc>>8]
			t[k][i] = crc
		}
	}
	return t
}()

// Extended LBA formats (NVMe 2.0): a controller with CTRATT.ELBAS describes each LBA
// format's protection information format and storage tag size in the NVM Command Set
// Identify Namespace data (CNS 05h, CSI 00h). Without ELBAS every PI format is the
// 8-byte tuple with a 16-bit guard.
const (
	CTRATTExtendedLBAFormats = 1 << 15 // Identify Controller CTRATT bit 15: ELBAS
	CNSNVMNamespace          = 0x05    // I/O command set specific Identify Namespace (CSI in CDW11 31:24)
)

// PI formats (ELBAF bits 8:7, PIF).
const (
	PIF16Guard = 0 // 16-bit guard: the 8-byte tuple
	PIF32Guard = 1
	PIF64Guard = 2
)

// NVMIdentifyNamespace is the NVM Command Set Identify Namespace data structure
// (NVM Command Set 1.0b, figure 97 in 2.0's numbering: CNS 05h, CSI 00h).
type NVMIdentifyNamespace struct {
	LBSTM uint64     // 0: logical block storage tag mask
	PIC   uint8      // 8: protection information capabilities
	_     [3]byte    // 9
	ELBAF [64]uint32 // 12: extended LBA format n: STS bits 6:0, PIF bits 8:7
	_     [3828]byte
}

var _ [IdentifyDataSize]byte = [unsafe.Sizeof(NVMIdentifyNamespace{})]byte{}

// ELBAFStorageTagSize is the storage tag size in bits of an extended LBA format.
func ELBAFStorageTagSize(e uint32) uint8 { return uint8(e & 0x7F) }

// ELBAFPIFormat is the protection information format (PIF16Guard...) of an extended
// LBA format.
func ELBAFPIFormat(e uint32) uint8 { return uint8(e>>7) & 0x3 }
