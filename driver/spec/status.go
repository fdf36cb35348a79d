package spec

import "fmt"

// StatusCodeType is the SCT field of a completion status (NVMe Base 2.0, figure 93).
type StatusCodeType uint8

// Status code types.
const (
	SCTGeneric            StatusCodeType = 0
	SCTCommandSpecific    StatusCodeType = 1
	SCTMediaDataIntegrity StatusCodeType = 2
	SCTPathRelated        StatusCodeType = 3
	SCTVendorSpecific     StatusCodeType = 7
)

func (t StatusCodeType) String() string {
	switch t {
	case SCTGeneric:
		return "generic"
	case SCTCommandSpecific:
		return "command specific"
	case SCTMediaDataIntegrity:
		return "media and data integrity"
	case SCTPathRelated:
		return "path related"
	case SCTVendorSpecific:
		return "vendor specific"
	}
	return fmt.Sprintf("status code type %d", uint8(t))
}

// Generic command status codes (SCT 0; NVMe Base 2.0 figure 94, NVM Command Set figure 17).
const (
	SCSuccess                  = 0x00
	SCInvalidOpcode            = 0x01
	SCInvalidField             = 0x02
	SCCommandIDConflict        = 0x03
	SCDataTransferError        = 0x04
	SCAbortedPowerLoss         = 0x05
	SCInternalError            = 0x06
	SCAbortRequested           = 0x07
	SCAbortedSQDeletion        = 0x08
	SCAbortedFailedFused       = 0x09
	SCAbortedMissingFused      = 0x0A
	SCInvalidNamespaceOrFormat = 0x0B
	SCCommandSequenceError     = 0x0C
	SCInvalidSGLDescriptor     = 0x0D
	SCInvalidSGLCount          = 0x0E
	SCDataSGLLengthInvalid     = 0x0F
	SCMetadataSGLLengthInvalid = 0x10
	SCSGLTypeInvalid           = 0x11
	SCInvalidUseOfCMB          = 0x12
	SCPRPOffsetInvalid         = 0x13
	SCAtomicWriteUnitExceeded  = 0x14
	SCOperationDenied          = 0x15
	SCSGLOffsetInvalid         = 0x16
	SCHostIDInconsistent       = 0x18
	SCKeepAliveExpired         = 0x19
	SCKeepAliveInvalid         = 0x1A
	SCAbortedPreempt           = 0x1B
	SCSanitizeFailed           = 0x1C
	SCSanitizeInProgress       = 0x1D
	SCNamespaceWriteProtected  = 0x20
	SCCommandInterrupted       = 0x21
	SCTransientTransportError  = 0x22
	SCLBAOutOfRange            = 0x80
	SCCapacityExceeded         = 0x81
	SCNamespaceNotReady        = 0x82
	SCReservationConflict      = 0x83
	SCFormatInProgress         = 0x84
)

// Command specific status codes (SCT 1; NVMe Base 2.0 figure 95, NVM Command Set figure 18).
const (
	SCCompletionQueueInvalid      = 0x00
	SCInvalidQueueIdentifier      = 0x01
	SCInvalidQueueSize            = 0x02
	SCAbortLimitExceeded          = 0x03
	SCAsyncEventLimitExceeded     = 0x05
	SCInvalidFirmwareSlot         = 0x06
	SCInvalidFirmwareImage        = 0x07
	SCInvalidInterruptVector      = 0x08
	SCInvalidLogPage              = 0x09
	SCInvalidFormat               = 0x0A
	SCInvalidQueueDeletion        = 0x0C
	SCFeatureNotSaveable          = 0x0D
	SCFeatureNotChangeable        = 0x0E
	SCFeatureNotNamespaceSpecific = 0x0F
	SCConflictingAttributes       = 0x80
	SCInvalidProtectionInfo       = 0x81
	SCWriteToReadOnlyRange        = 0x82
)

// Media and data integrity status codes (SCT 2; NVM Command Set figure 19).
const (
	SCWriteFault             = 0x80
	SCUnrecoveredReadError   = 0x81
	SCGuardCheckError        = 0x82
	SCApplicationTagError    = 0x83
	SCReferenceTagError      = 0x84
	SCCompareFailure         = 0x85
	SCAccessDenied           = 0x86
	SCDeallocatedOrUnwritten = 0x87
)

// Path related status codes (SCT 3; NVMe Base 2.0 figure 97).
const (
	SCInternalPathError      = 0x00
	SCANAPersistentLoss      = 0x01
	SCANAInaccessible        = 0x02
	SCANATransition          = 0x03
	SCControllerPathingError = 0x60
	SCHostPathingError       = 0x70
	SCAbortedByHost          = 0x71
)

var statusNames = map[StatusCodeType]map[uint8]string{
	SCTGeneric: {
		SCSuccess: "successful completion", SCInvalidOpcode: "invalid command opcode",
		SCInvalidField: "invalid field in command", SCCommandIDConflict: "command ID conflict",
		SCDataTransferError: "data transfer error", SCAbortedPowerLoss: "commands aborted due to power loss notification",
		SCInternalError: "internal error", SCAbortRequested: "command abort requested",
		SCAbortedSQDeletion: "command aborted due to SQ deletion", SCAbortedFailedFused: "command aborted due to failed fused command",
		SCAbortedMissingFused: "command aborted due to missing fused command", SCInvalidNamespaceOrFormat: "invalid namespace or format",
		SCCommandSequenceError: "command sequence error", SCInvalidSGLDescriptor: "invalid SGL segment descriptor",
		SCInvalidSGLCount: "invalid number of SGL descriptors", SCDataSGLLengthInvalid: "data SGL length invalid",
		SCMetadataSGLLengthInvalid: "metadata SGL length invalid", SCSGLTypeInvalid: "SGL descriptor type invalid",
		SCInvalidUseOfCMB: "invalid use of controller memory buffer", SCPRPOffsetInvalid: "PRP offset invalid",
		SCAtomicWriteUnitExceeded: "atomic write unit exceeded", SCOperationDenied: "operation denied",
		SCSGLOffsetInvalid: "SGL offset invalid", SCHostIDInconsistent: "host identifier inconsistent format",
		SCKeepAliveExpired: "keep alive timer expired", SCKeepAliveInvalid: "keep alive timeout invalid",
		SCAbortedPreempt: "command aborted due to preempt and abort", SCSanitizeFailed: "sanitize failed",
		SCSanitizeInProgress: "sanitize in progress", SCNamespaceWriteProtected: "namespace is write protected",
		SCCommandInterrupted: "command interrupted", SCTransientTransportError: "transient transport error",
		SCLBAOutOfRange: "LBA out of range", SCCapacityExceeded: "capacity exceeded",
		SCNamespaceNotReady: "namespace not ready", SCReservationConflict: "reservation conflict",
		SCFormatInProgress: "format in progress",
	},
	SCTCommandSpecific: {
		SCCompletionQueueInvalid: "completion queue invalid", SCInvalidQueueIdentifier: "invalid queue identifier",
		SCInvalidQueueSize: "invalid queue size", SCAbortLimitExceeded: "abort command limit exceeded",
		SCAsyncEventLimitExceeded: "asynchronous event request limit exceeded", SCInvalidFirmwareSlot: "invalid firmware slot",
		SCInvalidFirmwareImage: "invalid firmware image", SCInvalidInterruptVector: "invalid interrupt vector",
		SCInvalidLogPage: "invalid log page", SCInvalidFormat: "invalid format",
		SCInvalidQueueDeletion: "invalid queue deletion", SCFeatureNotSaveable: "feature identifier not saveable",
		SCFeatureNotChangeable: "feature not changeable", SCFeatureNotNamespaceSpecific: "feature not namespace specific",
		SCConflictingAttributes: "conflicting attributes", SCInvalidProtectionInfo: "invalid protection information",
		SCWriteToReadOnlyRange: "attempted write to read only range",
	},
	SCTMediaDataIntegrity: {
		SCWriteFault: "write fault", SCUnrecoveredReadError: "unrecovered read error",
		SCGuardCheckError: "end-to-end guard check error", SCApplicationTagError: "end-to-end application tag check error",
		SCReferenceTagError: "end-to-end reference tag check error", SCCompareFailure: "compare failure",
		SCAccessDenied: "access denied", SCDeallocatedOrUnwritten: "deallocated or unwritten logical block",
	},
	SCTPathRelated: {
		SCInternalPathError: "internal path error", SCANAPersistentLoss: "asymmetric access persistent loss",
		SCANAInaccessible: "asymmetric access inaccessible", SCANATransition: "asymmetric access transition",
		SCControllerPathingError: "controller pathing error", SCHostPathingError: "host pathing error",
		SCAbortedByHost: "command aborted by host",
	},
}

// String names the status as the spec does, e.g. "LBA out of range (sct 0, sc 0x80)".
func (s Status) String() string {
	name, ok := statusNames[s.SCT()][s.SC()]
	if !ok {
		name = "unknown status"
	}
	str := fmt.Sprintf("%s (sct %d, sc %#02x)", name, uint8(s.SCT()), s.SC())
	if s.DNR() {
		str += " [do not retry]"
	}
	return str
}
