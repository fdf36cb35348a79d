package spec

import "fmt"

// AdminOpcode is an admin command set opcode (NVMe Base 2.0, figure 138).
type AdminOpcode uint8

// Admin opcodes.
const (
	AdminDeleteIOSQ          AdminOpcode = 0x00
	AdminCreateIOSQ          AdminOpcode = 0x01
	AdminGetLogPage          AdminOpcode = 0x02
	AdminDeleteIOCQ          AdminOpcode = 0x04
	AdminCreateIOCQ          AdminOpcode = 0x05
	AdminIdentify            AdminOpcode = 0x06
	AdminAbort               AdminOpcode = 0x08
	AdminSetFeatures         AdminOpcode = 0x09
	AdminGetFeatures         AdminOpcode = 0x0A
	AdminAsyncEventRequest   AdminOpcode = 0x0C
	AdminNamespaceManagement AdminOpcode = 0x0D
	AdminFirmwareCommit      AdminOpcode = 0x10
	AdminFirmwareDownload    AdminOpcode = 0x11
	AdminKeepAlive           AdminOpcode = 0x18
	AdminDoorbellBufferCfg   AdminOpcode = 0x7C // Doorbell Buffer Config (OACS bit 8)
	AdminFormatNVM           AdminOpcode = 0x80
)

var adminOpcodeNames = map[AdminOpcode]string{
	AdminDeleteIOSQ: "Delete I/O SQ", AdminCreateIOSQ: "Create I/O SQ", AdminGetLogPage: "Get Log Page",
	AdminDeleteIOCQ: "Delete I/O CQ", AdminCreateIOCQ: "Create I/O CQ", AdminIdentify: "Identify",
	AdminAbort: "Abort", AdminSetFeatures: "Set Features", AdminGetFeatures: "Get Features",
	AdminAsyncEventRequest: "Asynchronous Event Request", AdminNamespaceManagement: "Namespace Management",
	AdminFirmwareCommit: "Firmware Commit", AdminFirmwareDownload: "Firmware Image Download",
	AdminKeepAlive: "Keep Alive", AdminFormatNVM: "Format NVM",
	AdminDoorbellBufferCfg: "Doorbell Buffer Config",
}

func (o AdminOpcode) String() string {
	if n, ok := adminOpcodeNames[o]; ok {
		return n
	}
	return fmt.Sprintf("admin opcode %#02x", uint8(o))
}

// IOOpcode is an NVM command set opcode (NVM Command Set 1.0, figure 16).
type IOOpcode uint8

// NVM command set opcodes.
const (
	IOFlush              IOOpcode = 0x00
	IOWrite              IOOpcode = 0x01
	IORead               IOOpcode = 0x02
	IOWriteUncorrectable IOOpcode = 0x04
	IOCompare            IOOpcode = 0x05
	IOWriteZeroes        IOOpcode = 0x08
	IODatasetManagement  IOOpcode = 0x09
	IOVerify             IOOpcode = 0x0C
)

var ioOpcodeNames = map[IOOpcode]string{
	IOFlush: "Flush", IOWrite: "Write", IORead: "Read", IOWriteUncorrectable: "Write Uncorrectable",
	IOCompare: "Compare", IOWriteZeroes: "Write Zeroes", IODatasetManagement: "Dataset Management",
	IOVerify: "Verify",
}

func (o IOOpcode) String() string {
	if n, ok := ioOpcodeNames[o]; ok {
		return n
	}
	return fmt.Sprintf("I/O opcode %#02x", uint8(o))
}

// Identify CNS values (NVMe Base 2.0, figure 273).
const (
	CNSNamespace        = 0x00
	CNSController       = 0x01
	CNSActiveNamespaces = 0x02
)

// IdentifyDataSize is the size of every Identify data structure.
const IdentifyDataSize = 4096

// Feature identifiers (NVMe Base 2.0, figure 317).
const (
	FeatureArbitration        = 0x01
	FeaturePowerManagement    = 0x02
	FeatureTemperature        = 0x04
	FeatureErrorRecovery      = 0x05
	FeatureVolatileWriteCache = 0x06
	FeatureNumberOfQueues     = 0x07
)

// Log page identifiers (NVMe Base 2.0, figure 202).
const (
	LogErrorInformation = 0x01
	LogSMARTHealth      = 0x02
	LogFirmwareSlot     = 0x03
)

// Create I/O queue flags in CDW11.
const (
	QueuePhysicallyContiguous = 1 << 0 // PC
	CQInterruptsEnabled       = 1 << 1 // IEN
)

// Read/write CDW12 flags.
const (
	RWForceUnitAccess     = 1 << 30 // FUA
	RWLimitedRetry        = 1 << 31 // LR
	WriteZeroesDeallocate = 1 << 25 // DEAC
)

// Dataset Management CDW11 attribute: deallocate.
const DSMDeallocate = 1 << 2

// Optional NVM Command Support bits (Identify Controller ONCS).
const (
	ONCSCompare            = 1 << 0
	ONCSWriteUncorrectable = 1 << 1
	ONCSDatasetManagement  = 1 << 2
	ONCSWriteZeroes        = 1 << 3
	ONCSSaveSelect         = 1 << 4
	ONCSReservations       = 1 << 5
	ONCSTimestamp          = 1 << 6
	ONCSVerify             = 1 << 7
)

// Optional Admin Command Support bits (Identify Controller OACS).
const (
	OACSSecurity             = 1 << 0
	OACSFormatNVM            = 1 << 1
	OACSFirmware             = 1 << 2
	OACSNamespaceMgmt        = 1 << 3
	OACSSelfTest             = 1 << 4
	OACSDirectives           = 1 << 5
	OACSNVMeMI               = 1 << 6
	OACSVirtualization       = 1 << 7
	OACSDoorbellBufferConfig = 1 << 8
)

// NumberOfQueues encodes the Number of Queues feature value (CDW11 of Set Features and
// DW0 of its completion): 0's based SQ count in bits 15:0, CQ count in bits 31:16.
func NumberOfQueues(nsq, ncq uint16) uint32 { return uint32(nsq-1) | uint32(ncq-1)<<16 }

// DecodeNumberOfQueues is the inverse of NumberOfQueues (counts are 1-based).
func DecodeNumberOfQueues(v uint32) (nsq, ncq uint32) { return v&0xFFFF + 1, v>>16 + 1 }
