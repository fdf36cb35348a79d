package spec

// Asynchronous event types, Completion DW0 bits 2:0 of an Asynchronous Event Request
// (NVMe Base 2.0, figure 146).
const (
	AsyncEventTypeError  = 0
	AsyncEventTypeSMART  = 1
	AsyncEventTypeNotice = 2
	AsyncEventTypeIO     = 6
	AsyncEventTypeVendor = 7
)

// SMART / Health status event information (figure 148).
const (
	AsyncInfoReliability  = 0x00 // NVM subsystem reliability
	AsyncInfoTemperature  = 0x01 // temperature threshold
	AsyncInfoSpareBelowTh = 0x02 // spare below threshold
)

// AsyncEventDW0 is the Completion DW0 of an Asynchronous Event Request: the event
// type in bits 2:0, its information in bits 15:8 and the log page that tells more
// (and clears the event) in bits 23:16.
func AsyncEventDW0(typ, info, logPage uint8) uint32 {
	return uint32(typ&7) | uint32(info)<<8 | uint32(logPage)<<16
}
