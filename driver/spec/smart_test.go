package spec

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Marshal puts every field at its spec offset in little-endian order.
func TestSMARTLogMarshal(t *testing.T) {
	var l SMARTLog
	l.CriticalWarning = 0x02
	l.SetTemperature(313)
	l.AvailableSpare, l.AvailableSpareThresh, l.PercentageUsed, l.EnduranceCritWarning = 100, 10, 3, 1
	SetCounter128(&l.DataUnitsRead, 0x0102030405060708)
	SetCounter128(&l.DataUnitsWritten, 2)
	SetCounter128(&l.HostReadCommands, 3)
	SetCounter128(&l.HostWriteCommands, 4)
	SetCounter128(&l.ControllerBusyTime, 5)
	SetCounter128(&l.PowerCycles, 6)
	SetCounter128(&l.PowerOnHours, 7)
	SetCounter128(&l.UnsafeShutdowns, 8)
	SetCounter128(&l.MediaErrors, 9)
	SetCounter128(&l.ErrorLogEntries, 10)
	l.WarningTempTime, l.CriticalTempTime = 0x11223344, 12
	l.TempSensors[0], l.TempSensors[7] = 300, 0xABCD
	b := bytes.Repeat([]byte{0xEE}, SMARTLogSize+8)
	l.Marshal(b)
	le := binary.LittleEndian
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"critical warning", uint64(b[0]), 2},
		{"temperature", uint64(le.Uint16(b[1:])), 313},
		{"available spare", uint64(b[3]), 100},
		{"spare threshold", uint64(b[4]), 10},
		{"percentage used", uint64(b[5]), 3},
		{"endurance warning", uint64(b[6]), 1},
		{"data units read", le.Uint64(b[32:]), 0x0102030405060708},
		{"data units read high", le.Uint64(b[40:]), 0},
		{"data units written", le.Uint64(b[48:]), 2},
		{"host read commands", le.Uint64(b[64:]), 3},
		{"host write commands", le.Uint64(b[80:]), 4},
		{"busy time", le.Uint64(b[96:]), 5},
		{"power cycles", le.Uint64(b[112:]), 6},
		{"power on hours", le.Uint64(b[128:]), 7},
		{"unsafe shutdowns", le.Uint64(b[144:]), 8},
		{"media errors", le.Uint64(b[160:]), 9},
		{"error log entries", le.Uint64(b[176:]), 10},
		{"warning temp time", uint64(le.Uint32(b[192:])), 0x11223344},
		{"critical temp time", uint64(le.Uint32(b[196:])), 12},
		{"sensor 1", uint64(le.Uint16(b[200:])), 300},
		{"sensor 8", uint64(le.Uint16(b[214:])), 0xABCD},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, c.got, c.want)
		}
	}
	for _, r := range [][2]int{{7, 32}, {216, SMARTLogSize}} {
		for i := r[0]; i < r[1]; i++ {
			if b[i] != 0 {
				t.Fatalf("reserved byte %d is %#x, want 0", i, b[i])
			}
		}
	}
	if b[SMARTLogSize] != 0xEE {
		t.Error("Marshal wrote past the page")
	}
}

func TestAsyncEventDW0(t *testing.T) {
	if got := AsyncEventDW0(AsyncEventTypeSMART, AsyncInfoTemperature, LogSMARTHealth); got != 0x020101 {
		t.Errorf("SMART temperature event DW0 %#x, want 0x020101", got)
	}
	if got := AsyncEventDW0(0xFF, 0, 0); got != 7 {
		t.Errorf("type is 3 bits: %#x, want 7", got)
	}
}
