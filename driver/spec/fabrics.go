package spec

import (
	"encoding/binary"
	"unsafe"
)

// NVMe over Fabrics structures (NVM Express over Fabrics Revision 1.1, "NVMe-oF 1.1",
// and NVMe Base 2.0 where the fabrics chapter moved). Every fabrics command is a 64-byte
// SQE with opcode 7Fh whose byte 4 is the Fabrics Command Type (FCTYPE); the structures
// here lay those SQEs out byte for byte. Multi-byte fields are little-endian on the wire:
// Marshal/Unmarshal convert explicitly, so the types work on any host byte order.

// OpcodeFabrics is the opcode of every fabrics command (NVMe-oF 1.1, figure 10).
const OpcodeFabrics = 0x7F

// FabricsCommandType is the FCTYPE field (NVMe-oF 1.1, figure 10 "Fabrics Command Types").
type FabricsCommandType uint8

// Fabrics command types.
const (
	FabricsPropertySet FabricsCommandType = 0x00
	FabricsConnect     FabricsCommandType = 0x01
	FabricsPropertyGet FabricsCommandType = 0x04
	FabricsAuthSend    FabricsCommandType = 0x05
	FabricsAuthReceive FabricsCommandType = 0x06
	FabricsDisconnect  FabricsCommandType = 0x08
)

// FabricsType is the FCTYPE of a fabrics SQE (byte 4: CDW1 bits 7:0 in spec.Command's
// layout, which names that dword NSID).
func (c *Command) FabricsType() FabricsCommandType { return FabricsCommandType(c.NSID) }

// Well-known NQNs (NVMe Base 2.0, section 4.5 "NVMe Qualified Names").
const (
	DiscoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"
	// NQNMaxLen is the longest NQN, excluding the terminating NUL.
	NQNMaxLen = 223
)

// ControllerIDDynamic in a Connect to the admin queue asks the subsystem to allocate a
// controller (dynamic controller model, NVMe-oF 1.1 section 3.3).
const ControllerIDDynamic = 0xFFFF

// Connect command attributes (CATTR, NVMe-oF 1.1 figure 20).
const (
	ConnectPriorityMask      = 0x03 // I/O queue priority class
	ConnectDisableSQFlowCtrl = 0x04 // SQ flow control disable: SQHD is not reported
)

// ConnectCommand is the Connect command SQE (NVMe-oF 1.1, figure 20). The data it
// carries, ConnectData, travels as in-capsule data on NVMe/TCP.
type ConnectCommand struct {
	Opcode uint8 // 00: 7Fh
	_      uint8
	CID    uint16   // 02
	FCType uint8    // 04: 01h
	_      [19]byte // 05
	SGL1   [16]byte // 24: data SGL descriptor
	RECFMT uint16   // 40: record format, 0
	QID    uint16   // 42: 0 admin, else the I/O queue
	SQSIZE uint16   // 44: submission queue size, 0's based
	CATTR  uint8    // 46: connect attributes
	_      uint8
	KATO   uint32   // 48: keep alive timeout in ms (admin queue only); 0 disables it
	_      [12]byte // 52
}

var _ [SQESize]byte = [unsafe.Sizeof(ConnectCommand{})]byte{}

// ConnectDataSize is the size of the Connect command's data.
const ConnectDataSize = 1024

// ConnectData is the data of a Connect command (NVMe-oF 1.1, figure 21).
type ConnectData struct {
	HostID  [16]byte  // 000: host identifier (a UUID)
	CNTLID  uint16    // 016: FFFFh for the admin queue (dynamic), else the controller ID
	_       [238]byte // 018
	SubNQN  [256]byte // 256: NUL terminated
	HostNQN [256]byte // 512: NUL terminated
	_       [256]byte // 768
}

var _ [ConnectDataSize]byte = [unsafe.Sizeof(ConnectData{})]byte{}

// Marshal writes the data's wire form into b (at least ConnectDataSize bytes).
func (d *ConnectData) Marshal(b []byte) {
	b = b[:ConnectDataSize]
	clear(b)
	copy(b[0:16], d.HostID[:])
	binary.LittleEndian.PutUint16(b[16:], d.CNTLID)
	copy(b[256:512], d.SubNQN[:])
	copy(b[512:768], d.HostNQN[:])
}

// Unmarshal reads the wire form from b; it reports false when b is too short.
func (d *ConnectData) Unmarshal(b []byte) bool {
	if len(b) < ConnectDataSize {
		return false
	}
	*d = ConnectData{}
	copy(d.HostID[:], b[0:16])
	d.CNTLID = binary.LittleEndian.Uint16(b[16:])
	copy(d.SubNQN[:], b[256:512])
	copy(d.HostNQN[:], b[512:768])
	return true
}

// SubsystemNQN is SubNQN up to its NUL.
func (d *ConnectData) SubsystemNQN() string { return cString(d.SubNQN[:]) }

// HostNQNString is HostNQN up to its NUL.
func (d *ConnectData) HostNQNString() string { return cString(d.HostNQN[:]) }

// SetNQNs stores the subsystem and host NQNs, NUL terminated (longer names are cut at
// 255 bytes; callers validate NQNs before).
func (d *ConnectData) SetNQNs(subnqn, hostnqn string) {
	d.SubNQN = [256]byte{}
	d.HostNQN = [256]byte{}
	copy(d.SubNQN[:255], subnqn)
	copy(d.HostNQN[:255], hostnqn)
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// Command-specific status codes of the Connect command (SCT 1; NVMe-oF 1.1, figure 22).
const (
	SCConnectIncompatibleFormat = 0x80
	SCConnectControllerBusy     = 0x81
	SCConnectInvalidParameters  = 0x82
	SCConnectRestartDiscovery   = 0x83
	SCConnectInvalidHost        = 0x84
)

// ConnectInvalidParameter encodes the completion DW0 of a Connect failed with
// SCConnectInvalidParameters (NVMe-oF 1.1, figure 23): IPO is the byte offset of the
// offending field, in the SQE (inData false) or in ConnectData (inData true).
func ConnectInvalidParameter(inData bool, offset uint16) uint32 {
	v := uint32(offset) << 16
	if inData {
		v |= 1 // IATTR bit 0: the field is in the Connect data
	}
	return v
}

// PropertySize is the ATTRIB size of a Property Get or Set (bits 2:0): 4 or 8 bytes.
const (
	PropertySize4 = 0
	PropertySize8 = 1
)

// PropertySetCommand is the Property Set command SQE (NVMe-oF 1.1, figure 27).
type PropertySetCommand struct {
	Opcode uint8 // 00: 7Fh
	_      uint8
	CID    uint16   // 02
	FCType uint8    // 04: 00h
	_      [35]byte // 05
	ATTRIB uint8    // 40: bits 2:0 size (PropertySize4/8)
	_      [3]byte  // 41
	OFST   uint32   // 44: property offset (the register offset of the PCIe BAR map)
	VALUE  uint64   // 48
	_      [8]byte  // 56
}

var _ [SQESize]byte = [unsafe.Sizeof(PropertySetCommand{})]byte{}

// PropertyGetCommand is the Property Get command SQE (NVMe-oF 1.1, figure 25). The
// value comes back in completion DW0 (and DW1 for 8-byte properties).
type PropertyGetCommand struct {
	Opcode uint8 // 00: 7Fh
	_      uint8
	CID    uint16   // 02
	FCType uint8    // 04: 04h
	_      [35]byte // 05
	ATTRIB uint8    // 40
	_      [3]byte  // 41
	OFST   uint32   // 44
	_      [16]byte // 48
}

var _ [SQESize]byte = [unsafe.Sizeof(PropertyGetCommand{})]byte{}

// The fabrics commands are views of the common SQE: these convert between them by
// field, so code that builds or parses one needs no unsafe casts and no byte order
// assumptions. spec.Command's dwords are numbered as the common format names them.

// ToCommand lays the Connect command out as an SQE.
func (c *ConnectCommand) ToCommand() Command {
	var s Command
	s.CDW0 = uint32(c.Opcode) | uint32(c.CID)<<16
	s.NSID = uint32(c.FCType)
	s.PRP1 = binary.LittleEndian.Uint64(c.SGL1[0:8])
	s.PRP2 = binary.LittleEndian.Uint64(c.SGL1[8:16])
	s.CDW10 = uint32(c.RECFMT) | uint32(c.QID)<<16
	s.CDW11 = uint32(c.SQSIZE) | uint32(c.CATTR)<<16
	s.CDW12 = c.KATO
	return s
}

// ConnectFromCommand reads a Connect command out of an SQE.
func ConnectFromCommand(s *Command) ConnectCommand {
	c := ConnectCommand{
		Opcode: s.Opcode(), CID: s.CID(), FCType: uint8(s.NSID),
		RECFMT: uint16(s.CDW10), QID: uint16(s.CDW10 >> 16),
		SQSIZE: uint16(s.CDW11), CATTR: uint8(s.CDW11 >> 16), KATO: s.CDW12,
	}
	binary.LittleEndian.PutUint64(c.SGL1[0:8], s.PRP1)
	binary.LittleEndian.PutUint64(c.SGL1[8:16], s.PRP2)
	return c
}

// ToCommand lays the Property Set command out as an SQE.
func (c *PropertySetCommand) ToCommand() Command {
	var s Command
	s.CDW0 = uint32(OpcodeFabrics) | uint32(c.CID)<<16
	s.NSID = uint32(FabricsPropertySet)
	s.CDW10 = uint32(c.ATTRIB)
	s.CDW11 = c.OFST
	s.CDW12 = uint32(c.VALUE)
	s.CDW13 = uint32(c.VALUE >> 32)
	return s
}

// PropertySetFromCommand reads a Property Set out of an SQE.
func PropertySetFromCommand(s *Command) PropertySetCommand {
	return PropertySetCommand{Opcode: s.Opcode(), CID: s.CID(), FCType: uint8(s.NSID),
		ATTRIB: uint8(s.CDW10), OFST: s.CDW11, VALUE: uint64(s.CDW12) | uint64(s.CDW13)<<32}
}

// ToCommand lays the Property Get command out as an SQE.
func (c *PropertyGetCommand) ToCommand() Command {
	var s Command
	s.CDW0 = uint32(OpcodeFabrics) | uint32(c.CID)<<16
	s.NSID = uint32(FabricsPropertyGet)
	s.CDW10 = uint32(c.ATTRIB)
	s.CDW11 = c.OFST
	return s
}

// PropertyGetFromCommand reads a Property Get out of an SQE.
func PropertyGetFromCommand(s *Command) PropertyGetCommand {
	return PropertyGetCommand{Opcode: s.Opcode(), CID: s.CID(), FCType: uint8(s.NSID),
		ATTRIB: uint8(s.CDW10), OFST: s.CDW11}
}

// SGL descriptor types and subtypes (NVMe Base 2.0, figures 117 and 118). Fabrics
// commands describe data with one SGL descriptor in SQE bytes 24-39 (PSDT 01b).
const (
	SGLTypeDataBlock          = 0x0
	SGLTypeTransportDataBlock = 0x5
	SGLSubtypeAddress         = 0x0
	SGLSubtypeOffset          = 0x1 // the address is an offset into the in-capsule data
	SGLSubtypeTransport       = 0xA // transport specific (NVMe/TCP: data moves by R2T/C2HData)

	// PSDTSGL is PSDT 01b in CDW0 bits 15:14: SGLs for data, metadata in one buffer.
	PSDTSGL = 1 << 14
)

// SGLDescriptor is a 16-byte SGL descriptor (NVMe Base 2.0, figure 117).
type SGLDescriptor struct {
	Address uint64
	Length  uint32
	_       [3]byte
	ID      uint8 // type bits 7:4, subtype bits 3:0
}

var _ [16]byte = [unsafe.Sizeof(SGLDescriptor{})]byte{}

// SGL reads the SGL descriptor of SQE bytes 24-39 (PRP1 and PRP2 in the PRP layout).
func (c *Command) SGL() SGLDescriptor {
	return SGLDescriptor{Address: c.PRP1, Length: uint32(c.PRP2), ID: uint8(c.PRP2 >> 56)}
}

// SetSGL stores d in SQE bytes 24-39 and selects SGLs in PSDT.
func (c *Command) SetSGL(d SGLDescriptor) {
	c.CDW0 = c.CDW0&^(3<<14) | PSDTSGL
	c.PRP1 = d.Address
	c.PRP2 = uint64(d.Length) | uint64(d.ID)<<56
}

// Type is the descriptor type.
func (d SGLDescriptor) Type() uint8 { return d.ID >> 4 }

// Subtype is the descriptor subtype.
func (d SGLDescriptor) Subtype() uint8 { return d.ID & 0xF }

// MakeSGLID builds the identifier byte from a type and subtype.
func MakeSGLID(typ, subtype uint8) uint8 { return typ<<4 | subtype&0xF }

// Identify Controller fields of fabrics controllers that spec.IdentifyController keeps
// in its padding (NVMe Base 2.0, figure 275). They are accessed by offset in the
// 4096-byte wire form.
const (
	IdentifyOffsetCNTRLTYPE = 111  // controller type: 1 I/O, 2 discovery, 3 administrative
	IdentifyOffsetKAS       = 320  // keep alive support, 100 ms units (16 bits)
	IdentifyOffsetIOCCSZ    = 1792 // I/O queue command capsule supported size, 16-byte units (32 bits)
	IdentifyOffsetIORCSZ    = 1796 // I/O queue response capsule supported size, 16-byte units (32 bits)
	IdentifyOffsetICDOFF    = 1800 // in capsule data offset, 16-byte units (16 bits)
	IdentifyOffsetFCATT     = 1802 // fabrics controller attributes: bit 0 static controller model
	IdentifyOffsetMSDBD     = 1803 // maximum SGL data block descriptors
	IdentifyOffsetOFCS      = 1804 // optional fabric commands supported (16 bits): bit 0 Disconnect

	ControllerTypeIO        = 1
	ControllerTypeDiscovery = 2
)

// Discovery Log Page (NVMe Base 2.0, section 5.16.1.23; NVMe-oF 1.1 figure 31).
const (
	LogDiscovery           = 0x70
	DiscoveryLogHeaderSize = 1024
	DiscoveryLogEntrySize  = 1024

	// TRTYPE values (NVMe-oF 1.1, figure 32).
	TransportRDMA = 1
	TransportFC   = 2
	TransportTCP  = 3
	// ADRFAM values.
	AddressFamilyIPv4 = 1
	AddressFamilyIPv6 = 2
	// SUBTYPE values.
	SubsystemTypeReferral  = 1 // a discovery service other than this one
	SubsystemTypeNVM       = 2
	SubsystemTypeDiscovery = 3 // the current discovery subsystem
	// TREQ bits 1:0: secure channel requirement; 2 = not required.
	TREQSecureChannelNotRequired = 2
)

// DiscoveryLogHeader is the discovery log page header (NVMe-oF 1.1, figure 31).
type DiscoveryLogHeader struct {
	GENCTR uint64 // 0: generation counter
	NUMREC uint64 // 8: number of records
	RECFMT uint16 // 16: record format, 0
	_      [1006]byte
}

var _ [DiscoveryLogHeaderSize]byte = [unsafe.Sizeof(DiscoveryLogHeader{})]byte{}

// Marshal writes the header's wire form into b (at least DiscoveryLogHeaderSize bytes).
func (h *DiscoveryLogHeader) Marshal(b []byte) {
	b = b[:DiscoveryLogHeaderSize]
	clear(b)
	binary.LittleEndian.PutUint64(b[0:], h.GENCTR)
	binary.LittleEndian.PutUint64(b[8:], h.NUMREC)
	binary.LittleEndian.PutUint16(b[16:], h.RECFMT)
}

// Unmarshal reads the header from b; it reports false when b is too short.
func (h *DiscoveryLogHeader) Unmarshal(b []byte) bool {
	if len(b) < DiscoveryLogHeaderSize {
		return false
	}
	*h = DiscoveryLogHeader{GENCTR: binary.LittleEndian.Uint64(b[0:]),
		NUMREC: binary.LittleEndian.Uint64(b[8:]), RECFMT: binary.LittleEndian.Uint16(b[16:])}
	return true
}

// DiscoveryLogEntry is one discovery log page entry (NVMe-oF 1.1, figure 32).
type DiscoveryLogEntry struct {
	TRTYPE  uint8     // 0
	ADRFAM  uint8     // 1
	SUBTYPE uint8     // 2
	TREQ    uint8     // 3
	PORTID  uint16    // 4
	CNTLID  uint16    // 6: FFFFh: dynamic controller model
	ASQSZ   uint16    // 8: admin max SQ size
	_       [22]byte  // 10
	TRSVCID [32]byte  // 32: transport service identifier (the port), ASCII, space padded
	_       [192]byte // 64
	SUBNQN  [256]byte // 256: NUL terminated
	TRADDR  [256]byte // 512: transport address, ASCII, space padded
	TSAS    [256]byte // 768: transport specific address subtype (TCP: byte 0 SECTYPE)
}

var _ [DiscoveryLogEntrySize]byte = [unsafe.Sizeof(DiscoveryLogEntry{})]byte{}

// Marshal writes the entry's wire form into b (at least DiscoveryLogEntrySize bytes).
func (e *DiscoveryLogEntry) Marshal(b []byte) {
	b = b[:DiscoveryLogEntrySize]
	clear(b)
	b[0], b[1], b[2], b[3] = e.TRTYPE, e.ADRFAM, e.SUBTYPE, e.TREQ
	binary.LittleEndian.PutUint16(b[4:], e.PORTID)
	binary.LittleEndian.PutUint16(b[6:], e.CNTLID)
	binary.LittleEndian.PutUint16(b[8:], e.ASQSZ)
	copy(b[32:64], e.TRSVCID[:])
	copy(b[256:512], e.SUBNQN[:])
	copy(b[512:768], e.TRADDR[:])
	copy(b[768:1024], e.TSAS[:])
}

// Unmarshal reads an entry from b; it reports false when b is too short.
func (e *DiscoveryLogEntry) Unmarshal(b []byte) bool {
	if len(b) < DiscoveryLogEntrySize {
		return false
	}
	*e = DiscoveryLogEntry{TRTYPE: b[0], ADRFAM: b[1], SUBTYPE: b[2], TREQ: b[3],
		PORTID: binary.LittleEndian.Uint16(b[4:]), CNTLID: binary.LittleEndian.Uint16(b[6:]),
		ASQSZ: binary.LittleEndian.Uint16(b[8:])}
	copy(e.TRSVCID[:], b[32:64])
	copy(e.SUBNQN[:], b[256:512])
	copy(e.TRADDR[:], b[512:768])
	copy(e.TSAS[:], b[768:1024])
	return true
}

// Address is TRADDR without its padding.
func (e *DiscoveryLogEntry) Address() string { return trimASCII(e.TRADDR[:]) }

// ServiceID is TRSVCID without its padding.
func (e *DiscoveryLogEntry) ServiceID() string { return trimASCII(e.TRSVCID[:]) }

// SubsystemNQN is SUBNQN up to its NUL.
func (e *DiscoveryLogEntry) SubsystemNQN() string { return cString(e.SUBNQN[:]) }
