package spec

import "encoding/binary"

// Marshal writes the SMART / Health log page's wire form (little-endian, NVMe Base 2.0
// figure 207) into b, which must hold SMARTLogSize bytes; bytes the struct leaves
// reserved are zeroed. Unlike casting the struct's memory, it is right on any host
// byte order.
func (l *SMARTLog) Marshal(b []byte) {
	b = b[:SMARTLogSize]
	clear(b)
	le := binary.LittleEndian
	b[0] = l.CriticalWarning
	copy(b[1:3], l.Temperature[:])
	b[3] = l.AvailableSpare
	b[4] = l.AvailableSpareThresh
	b[5] = l.PercentageUsed
	b[6] = l.EnduranceCritWarning
	for i, c := range []*[16]byte{&l.DataUnitsRead, &l.DataUnitsWritten, &l.HostReadCommands,
		&l.HostWriteCommands, &l.ControllerBusyTime, &l.PowerCycles, &l.PowerOnHours,
		&l.UnsafeShutdowns, &l.MediaErrors, &l.ErrorLogEntries} {
		copy(b[32+16*i:], c[:])
	}
	le.PutUint32(b[192:], l.WarningTempTime)
	le.PutUint32(b[196:], l.CriticalTempTime)
	for i, t := range l.TempSensors {
		le.PutUint16(b[200+2*i:], t)
	}
}

// SetTemperature sets the composite temperature, in kelvins.
func (l *SMARTLog) SetTemperature(kelvins uint16) {
	binary.LittleEndian.PutUint16(l.Temperature[:], kelvins)
}
