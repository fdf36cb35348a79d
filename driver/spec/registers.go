package spec

import "fmt"

// Controller register offsets in BAR0 (NVMe Base 2.0, section 3.1.4 "Controller Properties").
const (
	RegCAP    = 0x00 // Controller Capabilities, 64-bit
	RegVS     = 0x08 // Version
	RegINTMS  = 0x0C // Interrupt Mask Set
	RegINTMC  = 0x10 // Interrupt Mask Clear
	RegCC     = 0x14 // Controller Configuration
	RegCSTS   = 0x1C // Controller Status
	RegNSSR   = 0x20 // NVM Subsystem Reset
	RegAQA    = 0x24 // Admin Queue Attributes
	RegASQ    = 0x28 // Admin Submission Queue Base Address, 64-bit
	RegACQ    = 0x30 // Admin Completion Queue Base Address, 64-bit
	RegCMBLOC = 0x38 // Controller Memory Buffer Location
	RegCMBSZ  = 0x3C // Controller Memory Buffer Size
	RegCMBMSC = 0x50 // Controller Memory Buffer Memory Space Control, 64-bit (NVMe 1.4)
	RegCMBSTS = 0x58 // Controller Memory Buffer Status (NVMe 1.4)

	// RegDoorbellBase is where the doorbell array starts; each queue has an SQ tail and a
	// CQ head doorbell, DoorbellStride(CAP.DSTRD) bytes apart.
	RegDoorbellBase = 0x1000
)

// DoorbellStride is the distance in bytes between doorbells: 4 << CAP.DSTRD.
func DoorbellStride(dstrd uint8) uint32 { return 4 << dstrd }

// SQTailDoorbell is the offset of submission queue qid's tail doorbell.
func SQTailDoorbell(qid uint16, dstrd uint8) uint32 {
	return RegDoorbellBase + (2*uint32(qid))*DoorbellStride(dstrd)
}

// CQHeadDoorbell is the offset of completion queue qid's head doorbell.
func CQHeadDoorbell(qid uint16, dstrd uint8) uint32 {
	return RegDoorbellBase + (2*uint32(qid)+1)*DoorbellStride(dstrd)
}

// CAP is the Controller Capabilities register (offset 0x00).
type CAP uint64

// MQES is Maximum Queue Entries Supported, 0's based (bits 15:0).
func (c CAP) MQES() uint16 { return uint16(c) }

// CQR is Contiguous Queues Required (bit 16).
func (c CAP) CQR() bool { return c>>16&1 == 1 }

// TO is the worst-case time to wait for CSTS.RDY to change, in 500 ms units (bits 31:24).
func (c CAP) TO() uint8 { return uint8(c >> 24) }

// DSTRD is the doorbell stride exponent (bits 35:32).
func (c CAP) DSTRD() uint8 { return uint8(c>>32) & 0xF }

// NSSRS is NVM Subsystem Reset Supported (bit 36).
func (c CAP) NSSRS() bool { return c>>36&1 == 1 }

// CSS is Command Sets Supported (bits 44:37); bit 0 of the field is the NVM command set.
func (c CAP) CSS() uint8 { return uint8(c >> 37) }

// MPSMIN is Memory Page Size Minimum: the page size is 2^(12+MPSMIN) (bits 51:48).
func (c CAP) MPSMIN() uint8 { return uint8(c>>48) & 0xF }

// MPSMAX is Memory Page Size Maximum: 2^(12+MPSMAX) (bits 55:52).
func (c CAP) MPSMAX() uint8 { return uint8(c>>52) & 0xF }

// CMBS is Controller Memory Buffer Supported (bit 57): the controller uses the NVMe
// 1.4 CMB scheme, where the host enables CMBLOC/CMBSZ and the CMB's address decoding
// through CMBMSC.
func (c CAP) CMBS() bool { return c>>57&1 == 1 }

// CAPCMBS is the CMBS bit, for controller models.
const CAPCMBS CAP = 1 << 57

// MakeCAP assembles a CAP value; used by controller models.
func MakeCAP(mqes uint16, cqr bool, to uint8, dstrd uint8, css uint8, mpsmin, mpsmax uint8) CAP {
	v := uint64(mqes) | uint64(to)<<24 | uint64(dstrd&0xF)<<32 | uint64(css)<<37 |
		uint64(mpsmin&0xF)<<48 | uint64(mpsmax&0xF)<<52
	if cqr {
		v |= 1 << 16
	}
	return CAP(v)
}

func (c CAP) String() string {
	return fmt.Sprintf("CAP{MQES:%d CQR:%t TO:%d DSTRD:%d CSS:%#x MPSMIN:%d MPSMAX:%d}",
		c.MQES(), c.CQR(), c.TO(), c.DSTRD(), c.CSS(), c.MPSMIN(), c.MPSMAX())
}

// VS is the Version register (offset 0x08).
type VS uint32

// MakeVS builds a version value such as 1.4.0.
func MakeVS(major, minor, tertiary uint8) VS {
	return VS(uint32(major)<<16 | uint32(minor)<<8 | uint32(tertiary))
}

func (v VS) String() string { return fmt.Sprintf("%d.%d.%d", uint32(v)>>16, uint8(v>>8), uint8(v)) }

// CC is the Controller Configuration register (offset 0x14).
type CC uint32

// CC bit fields.
const (
	CCEnable         CC    = 1 << 0 // EN
	ccCSSShift             = 4      // CSS, bits 6:4
	ccMPSShift             = 7      // MPS, bits 10:7
	ccAMSShift             = 11     // AMS, bits 13:11
	ccSHNShift             = 14     // SHN, bits 15:14
	ccIOSQESShift          = 16     // IOSQES, bits 19:16
	ccIOCQESShift          = 20     // IOCQES, bits 23:20
	CCShutdownNone   uint8 = 0
	CCShutdownNormal uint8 = 1
	CCShutdownAbrupt uint8 = 2
)

// EN reports whether the controller is enabled.
func (c CC) EN() bool { return c&CCEnable != 0 }

// CSS is the I/O command set selected (0 = NVM).
func (c CC) CSS() uint8 { return uint8(c>>ccCSSShift) & 0x7 }

// MPS is the memory page size exponent: page = 2^(12+MPS).
func (c CC) MPS() uint8 { return uint8(c>>ccMPSShift) & 0xF }

// SHN is the shutdown notification (CCShutdown*).
func (c CC) SHN() uint8 { return uint8(c>>ccSHNShift) & 0x3 }

// IOSQES is the I/O SQ entry size exponent (6 = 64 bytes).
func (c CC) IOSQES() uint8 { return uint8(c>>ccIOSQESShift) & 0xF }

// IOCQES is the I/O CQ entry size exponent (4 = 16 bytes).
func (c CC) IOCQES() uint8 { return uint8(c>>ccIOCQESShift) & 0xF }

// MakeCC assembles a CC value.
func MakeCC(en bool, css, mps, shn, iosqes, iocqes uint8) CC {
	v := CC(css&0x7)<<ccCSSShift | CC(mps&0xF)<<ccMPSShift | CC(shn&0x3)<<ccSHNShift |
		CC(iosqes&0xF)<<ccIOSQESShift | CC(iocqes&0xF)<<ccIOCQESShift
	if en {
		v |= CCEnable
	}
	return v
}

func (c CC) String() string {
	return fmt.Sprintf("CC{EN:%t CSS:%d MPS:%d SHN:%d IOSQES:%d IOCQES:%d}",
		c.EN(), c.CSS(), c.MPS(), c.SHN(), c.IOSQES(), c.IOCQES())
}

// CSTS is the Controller Status register (offset 0x1C).
type CSTS uint32

// CSTS bit fields.
const (
	CSTSReady       CSTS = 1 << 0 // RDY
	CSTSFatal       CSTS = 1 << 1 // CFS: Controller Fatal Status
	cstsSHSTShift        = 2      // SHST, bits 3:2
	CSTSSubsysReset CSTS = 1 << 4 // NSSRO
	CSTSPaused      CSTS = 1 << 5 // PP: Processing Paused

	ShutdownStatusNormal    uint8 = 0 // no shutdown requested
	ShutdownStatusOccurring uint8 = 1
	ShutdownStatusComplete  uint8 = 2
)

// RDY reports CSTS.RDY.
func (s CSTS) RDY() bool { return s&CSTSReady != 0 }

// CFS reports Controller Fatal Status.
func (s CSTS) CFS() bool { return s&CSTSFatal != 0 }

// SHST is the shutdown status (ShutdownStatus*).
func (s CSTS) SHST() uint8 { return uint8(s>>cstsSHSTShift) & 0x3 }

// WithSHST returns s with its SHST field set.
func (s CSTS) WithSHST(v uint8) CSTS {
	return s&^(0x3<<cstsSHSTShift) | CSTS(v&0x3)<<cstsSHSTShift
}

func (s CSTS) String() string {
	if s == 0xFFFFFFFF {
		return "CSTS{all ones: device not responding}"
	}
	return fmt.Sprintf("CSTS{RDY:%t CFS:%t SHST:%d NSSRO:%t PP:%t}",
		s.RDY(), s.CFS(), s.SHST(), s&CSTSSubsysReset != 0, s&CSTSPaused != 0)
}

// AQA is the Admin Queue Attributes register (offset 0x24): both sizes are 0's based.
type AQA uint32

// MakeAQA builds AQA from entry counts (not 0's based).
func MakeAQA(sqEntries, cqEntries uint16) AQA {
	return AQA(uint32(sqEntries-1)&0xFFF | (uint32(cqEntries-1)&0xFFF)<<16)
}

// ASQS is the admin SQ size in entries.
func (a AQA) ASQS() uint16 { return uint16(a&0xFFF) + 1 }

// ACQS is the admin CQ size in entries.
func (a AQA) ACQS() uint16 { return uint16(a>>16&0xFFF) + 1 }

func (a AQA) String() string { return fmt.Sprintf("AQA{ASQS:%d ACQS:%d}", a.ASQS(), a.ACQS()) }

// CMBSZ is the Controller Memory Buffer Size register (offset 3Ch; NVMe Base 2.0,
// section 3.1.4.12). Under the NVMe 1.4 scheme (CAP.CMBS) it reads as zero until the
// host sets CMBMSC.CRE.
type CMBSZ uint32

// CMBSZ support bits.
const (
	CMBSZSQS   CMBSZ = 1 << 0 // Submission Queue Support
	CMBSZCQS   CMBSZ = 1 << 1 // Completion Queue Support
	CMBSZLISTS CMBSZ = 1 << 2 // PRP SGL List Support
	CMBSZRDS   CMBSZ = 1 << 3 // Read Data Support
	CMBSZWDS   CMBSZ = 1 << 4 // Write Data Support
)

// MakeCMBSZ builds CMBSZ: size in units of 4 KiB << (4 × szu), with the support bits.
func MakeCMBSZ(support CMBSZ, szu uint8, size uint32) CMBSZ {
	return support&0x1F | CMBSZ(szu&0xF)<<8 | CMBSZ(size)<<12
}

// SQS reports whether I/O submission queues may live in the CMB (bit 0).
func (c CMBSZ) SQS() bool { return c&CMBSZSQS != 0 }

// CQS reports whether I/O completion queues may live in the CMB (bit 1).
func (c CMBSZ) CQS() bool { return c&CMBSZCQS != 0 }

// LISTS reports whether PRP lists and SGL segments may live in the CMB (bit 2).
func (c CMBSZ) LISTS() bool { return c&CMBSZLISTS != 0 }

// RDS reports whether data and metadata of commands that move data from the
// controller to the host (reads) may live in the CMB (bit 3).
func (c CMBSZ) RDS() bool { return c&CMBSZRDS != 0 }

// WDS reports whether data and metadata of commands that move data from the host to
// the controller (writes) may live in the CMB (bit 4).
func (c CMBSZ) WDS() bool { return c&CMBSZWDS != 0 }

// SZU is the Size Units field (bits 11:8): 0 = 4 KiB, 1 = 64 KiB, 2 = 1 MiB,
// 3 = 16 MiB, 4 = 256 MiB, 5 = 4 GiB, 6 = 64 GiB; 7 to Fh are reserved.
func (c CMBSZ) SZU() uint8 { return uint8(c>>8) & 0xF }

// SZ is the Size field (bits 31:12): the CMB size in SZU units.
func (c CMBSZ) SZ() uint32 { return uint32(c) >> 12 }

// Unit is the size unit in bytes (SZU: 4 KiB << (4 × SZU)); 0 for reserved SZU values.
func (c CMBSZ) Unit() uint64 {
	szu := c.SZU()
	if szu > 6 {
		return 0
	}
	return 4096 << (4 * uint64(szu))
}

// Size is the CMB size in bytes (SZ × size unit), 0 when there is no CMB.
func (c CMBSZ) Size() uint64 { return uint64(c.SZ()) * c.Unit() }

func (c CMBSZ) String() string {
	return fmt.Sprintf("CMBSZ{SZ:%d bytes SQS:%t CQS:%t LISTS:%t RDS:%t WDS:%t}",
		c.Size(), c.SQS(), c.CQS(), c.LISTS(), c.RDS(), c.WDS())
}

// CMBLOC is the Controller Memory Buffer Location register (offset 38h; NVMe Base 2.0,
// section 3.1.4.11).
type CMBLOC uint32

// MakeCMBLOC places the CMB at offset ofst (in CMBSZ units) of BAR bir.
func MakeCMBLOC(bir uint8, ofst uint32) CMBLOC { return CMBLOC(bir&0x7) | CMBLOC(ofst)<<12 }

// BIR is the BAR indicator register holding the CMB.
func (c CMBLOC) BIR() uint8 { return uint8(c) & 0x7 }

// OFST is the offset of the CMB in its BAR, in CMBSZ size units (bits 31:12).
func (c CMBLOC) OFST() uint32 { return uint32(c) >> 12 }

// Offset is the CMB's offset in its BAR in bytes: OFST in the size units of sz.
func (c CMBLOC) Offset(sz CMBSZ) uint64 { return uint64(c.OFST()) * sz.Unit() }

func (c CMBLOC) String() string { return fmt.Sprintf("CMBLOC{BIR:%d OFST:%d}", c.BIR(), c.OFST()) }

// CMBMSC is the Controller Memory Buffer Memory Space Control register (offset 50h,
// 64-bit; NVMe Base 2.0, section 3.1.4.13), used when CAP.CMBS is set.
type CMBMSC uint64

// CMBMSC bits.
const (
	CMBMSCCRE  CMBMSC = 1 << 0 // Capabilities Registers Enabled: CMBLOC and CMBSZ read as the CMB
	CMBMSCCMSE CMBMSC = 1 << 1 // Controller Memory Space Enable: the controller decodes CBA
)

// MakeCMBMSC enables the registers and the memory space at controller base address
// cba (4 KiB aligned; its low bits are dropped).
func MakeCMBMSC(cba uint64) CMBMSC { return CMBMSC(cba&^0xFFF) | CMBMSCCRE | CMBMSCCMSE }

// CRE reports Capabilities Registers Enabled.
func (c CMBMSC) CRE() bool { return c&CMBMSCCRE != 0 }

// CMSE reports Controller Memory Space Enable.
func (c CMBMSC) CMSE() bool { return c&CMBMSCCMSE != 0 }

// CBA is the Controller Base Address: the address at which the controller takes
// queue and data pointers to be in the CMB.
func (c CMBMSC) CBA() uint64 { return uint64(c) &^ 0xFFF }

// CMBSTS is the Controller Memory Buffer Status register (offset 58h).
type CMBSTS uint32

// CBAI is Controller Base Address Invalid: the CBA written to CMBMSC cannot be used
// (the CMB would wrap past the top of the address space).
func (c CMBSTS) CBAI() bool { return c&1 != 0 }
