package spec

import (
	"strings"
	"unsafe"
)

// IdentifyController is the Identify Controller data structure, CNS 01h
// (NVMe Base 2.0, figure 275). Fields nvmeperf does not use are kept as padding so
// that the offsets of the ones it uses stay those of the spec.
type IdentifyController struct {
	VID     uint16   // 0: PCI vendor ID
	SSVID   uint16   // 2: PCI subsystem vendor ID
	SN      [20]byte // 4: serial number, ASCII, space padded
	MN      [40]byte // 24: model number
	FR      [8]byte  // 64: firmware revision
	RAB     uint8    // 72: recommended arbitration burst
	IEEE    [3]byte  // 73: IEEE OUI
	CMIC    uint8    // 76: multi-path I/O and namespace sharing capabilities
	MDTS    uint8    // 77: maximum data transfer size, 2^MDTS × CAP.MPSMIN pages; 0 = no limit
	CNTLID  uint16   // 78: controller ID
	VER     uint32   // 80: version
	RTD3R   uint32   // 84
	RTD3E   uint32   // 88
	OAES    uint32   // 92: optional asynchronous events supported
	CTRATT  uint32   // 96: controller attributes
	_       [156]byte
	OACS    uint16 // 256: optional admin command support
	ACL     uint8  // 258: abort command limit, 0's based
	AERL    uint8  // 259
	FRMW    uint8  // 260
	LPA     uint8  // 261: log page attributes
	ELPE    uint8  // 262
	NPSS    uint8  // 263
	_       [248]byte
	SQES    uint8  // 512: required (3:0) and maximum (7:4) SQ entry size, log2
	CQES    uint8  // 513: required and maximum CQ entry size, log2
	MAXCMD  uint16 // 514
	NN      uint32 // 516: number of namespaces (highest NSID)
	ONCS    uint16 // 520: optional NVM command support
	FUSES   uint16 // 522
	FNA     uint8  // 524: format NVM attributes
	VWC     uint8  // 525: volatile write cache
	AWUN    uint16 // 526
	AWUPF   uint16 // 528
	ICSVSCC uint8  // 530
	NWPC    uint8  // 531
	ACWU    uint16 // 532
	_       [2]byte
	SGLS    uint32 // 536: SGL support
	MNAN    uint32 // 540
	_       [224]byte
	SUBNQN  [256]byte // 768: NVM subsystem NVMe qualified name
	_       [3072]byte
}

var _ [IdentifyDataSize]byte = [unsafe.Sizeof(IdentifyController{})]byte{}

// DoorbellBufferConfig reports whether the controller supports the Doorbell Buffer
// Config command (OACS bit 8): shadow doorbells and EventIdx buffers.
func (c *IdentifyController) DoorbellBufferConfig() bool {
	return c.OACS&OACSDoorbellBufferConfig != 0
}

// Serial is SN without its padding.
func (c *IdentifyController) Serial() string { return trimASCII(c.SN[:]) }

// Model is MN without its padding.
func (c *IdentifyController) Model() string { return trimASCII(c.MN[:]) }

// Firmware is FR without its padding.
func (c *IdentifyController) Firmware() string { return trimASCII(c.FR[:]) }

// SubsystemNQN is SUBNQN without its padding.
func (c *IdentifyController) SubsystemNQN() string { return trimASCII(c.SUBNQN[:]) }

// MaxTransferBytes is the largest data transfer in bytes for a controller whose minimum
// page size is minPage; 0 means the controller sets no limit.
func (c *IdentifyController) MaxTransferBytes(minPage uint32) uint64 {
	if c.MDTS == 0 {
		return 0
	}
	return uint64(minPage) << c.MDTS
}

// SetString stores s into a space-padded ASCII field, as controllers fill SN, MN and FR.
func SetString(dst []byte, s string) {
	n := copy(dst, s)
	for i := n; i < len(dst); i++ {
		dst[i] = ' '
	}
}

func trimASCII(b []byte) string { return strings.TrimRight(string(b), " \x00") }

// LBAFormat is one LBA Format Data Structure entry (NVM Command Set 1.0, figure 116).
type LBAFormat uint32

// MS is the metadata size in bytes per LBA.
func (f LBAFormat) MS() uint16 { return uint16(f) }

// LBADS is the LBA data size exponent: the sector is 2^LBADS bytes.
func (f LBAFormat) LBADS() uint8 { return uint8(f >> 16) }

// RP is the relative performance (0 best).
func (f LBAFormat) RP() uint8 { return uint8(f>>24) & 0x3 }

// MakeLBAFormat builds an LBA format entry.
func MakeLBAFormat(ms uint16, lbads uint8, rp uint8) LBAFormat {
	return LBAFormat(uint32(ms) | uint32(lbads)<<16 | uint32(rp&0x3)<<24)
}

// IdentifyNamespace is the Identify Namespace data structure for the NVM command set,
// CNS 00h (NVM Command Set 1.0, figure 114).
type IdentifyNamespace struct {
	NSZE     uint64   // 0: namespace size in logical blocks
	NCAP     uint64   // 8: namespace capacity
	NUSE     uint64   // 16: namespace utilization
	NSFEAT   uint8    // 24: namespace features
	NLBAF    uint8    // 25: number of LBA formats, 0's based
	FLBAS    uint8    // 26: formatted LBA size: format index bits 3:0 (and 6:5), bit 4 extended metadata
	MC       uint8    // 27: metadata capabilities
	DPC      uint8    // 28: end-to-end data protection capabilities
	DPS      uint8    // 29: end-to-end data protection type settings
	NMIC     uint8    // 30
	RESCAP   uint8    // 31
	FPI      uint8    // 32
	DLFEAT   uint8    // 33: deallocate logical block features
	NAWUN    uint16   // 34
	NAWUPF   uint16   // 36
	NACWU    uint16   // 38
	NABSN    uint16   // 40
	NABO     uint16   // 42
	NABSPF   uint16   // 44
	NOIOB    uint16   // 46: namespace optimal I/O boundary
	NVMCAP   [16]byte // 48
	NPWG     uint16   // 64
	NPWA     uint16   // 66
	NPDG     uint16   // 68
	NPDA     uint16   // 70
	NOWS     uint16   // 72
	_        [18]byte
	ANAGRPID uint32 // 92
	_        [3]byte
	NSATTR   uint8         // 99
	NVMSETID uint16        // 100
	ENDGID   uint16        // 102
	NGUID    [16]byte      // 104
	EUI64    [8]byte       // 120
	LBAF     [64]LBAFormat // 128: LBA formats 0..63
	_        [3712]byte
}

var _ [IdentifyDataSize]byte = [unsafe.Sizeof(IdentifyNamespace{})]byte{}

// FormatIndex is the LBA format in use (FLBAS bits 3:0, with bits 6:5 as the high bits).
func (n *IdentifyNamespace) FormatIndex() int {
	return int(n.FLBAS&0xF) | int(n.FLBAS>>5&0x3)<<4
}

// ExtendedMetadata reports whether metadata travels at the end of each LBA (FLBAS bit 4).
func (n *IdentifyNamespace) ExtendedMetadata() bool { return n.FLBAS>>4&1 == 1 }

// CurrentFormat is the LBA format in use.
func (n *IdentifyNamespace) CurrentFormat() LBAFormat { return n.LBAF[n.FormatIndex()] }

// SectorSize is the logical block data size in bytes.
func (n *IdentifyNamespace) SectorSize() uint32 { return 1 << n.CurrentFormat().LBADS() }

// DeallocatedReadsZeroes reports whether the namespace promises zeroes for deallocated
// blocks (DLFEAT bits 2:0 = 001b).
func (n *IdentifyNamespace) DeallocatedReadsZeroes() bool { return n.DLFEAT&0x7 == 1 }

// ActiveNamespaceList is the Identify Active Namespace ID list, CNS 02h: up to 1024
// NSIDs in increasing order, terminated by a zero entry.
type ActiveNamespaceList [1024]uint32

var _ [IdentifyDataSize]byte = [unsafe.Sizeof(ActiveNamespaceList{})]byte{}

// IDs returns the NSIDs up to the first zero.
func (l *ActiveNamespaceList) IDs() []uint32 {
	for i, id := range l {
		if id == 0 {
			return append([]uint32(nil), l[:i]...)
		}
	}
	return append([]uint32(nil), l[:]...)
}

// SMARTLog is the SMART / Health Information log page, LID 02h (NVMe Base 2.0, figure 207).
// 128-bit counters are kept as little-endian byte arrays.
type SMARTLog struct {
	CriticalWarning      uint8   // 0
	Temperature          [2]byte // 1: composite temperature in kelvins (unaligned in the spec)
	AvailableSpare       uint8   // 3
	AvailableSpareThresh uint8   // 4
	PercentageUsed       uint8   // 5
	EnduranceCritWarning uint8   // 6
	_                    [25]byte
	DataUnitsRead        [16]byte  // 32: in thousands of 512-byte units
	DataUnitsWritten     [16]byte  // 48
	HostReadCommands     [16]byte  // 64
	HostWriteCommands    [16]byte  // 80
	ControllerBusyTime   [16]byte  // 96
	PowerCycles          [16]byte  // 112
	PowerOnHours         [16]byte  // 128
	UnsafeShutdowns      [16]byte  // 144
	MediaErrors          [16]byte  // 160
	ErrorLogEntries      [16]byte  // 176
	WarningTempTime      uint32    // 192
	CriticalTempTime     uint32    // 196
	TempSensors          [8]uint16 // 200
	_                    [296]byte
}

// SMARTLogSize is the size of the SMART / Health log page.
const SMARTLogSize = 512

var _ [SMARTLogSize]byte = [unsafe.Sizeof(SMARTLog{})]byte{}

// Counter128 reads the low 64 bits of a 128-bit little-endian counter.
func Counter128(b [16]byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// SetCounter128 stores v into a 128-bit little-endian counter.
func SetCounter128(b *[16]byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
	for i := 8; i < 16; i++ {
		b[i] = 0
	}
}
