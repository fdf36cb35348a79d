package spec

import (
	"strings"
	"testing"
	"unsafe"
)

// TestLayout pins the offsets the spec gives for the fields nvmeperf reads or writes.
func TestLayout(t *testing.T) {
	var cmd Command
	var cpl Completion
	var ic IdentifyController
	var ns IdentifyNamespace
	var smart SMARTLog
	cases := []struct {
		name      string
		got, want uintptr
	}{
		{"Command size", unsafe.Sizeof(cmd), 64},
		{"Command.NSID", unsafe.Offsetof(cmd.NSID), 4},
		{"Command.MPTR", unsafe.Offsetof(cmd.MPTR), 16},
		{"Command.PRP1", unsafe.Offsetof(cmd.PRP1), 24},
		{"Command.PRP2", unsafe.Offsetof(cmd.PRP2), 32},
		{"Command.CDW10", unsafe.Offsetof(cmd.CDW10), 40},
		{"Command.CDW15", unsafe.Offsetof(cmd.CDW15), 60},
		{"Completion size", unsafe.Sizeof(cpl), 16},
		{"Completion.SQHD", unsafe.Offsetof(cpl.SQHD), 8},
		{"Completion.SQID", unsafe.Offsetof(cpl.SQID), 10},
		{"Completion.CID", unsafe.Offsetof(cpl.CID), 12},
		{"Completion.Status", unsafe.Offsetof(cpl.Status), 14},
		{"IdentifyController.SN", unsafe.Offsetof(ic.SN), 4},
		{"IdentifyController.MN", unsafe.Offsetof(ic.MN), 24},
		{"IdentifyController.FR", unsafe.Offsetof(ic.FR), 64},
		{"IdentifyController.MDTS", unsafe.Offsetof(ic.MDTS), 77},
		{"IdentifyController.VER", unsafe.Offsetof(ic.VER), 80},
		{"IdentifyController.OACS", unsafe.Offsetof(ic.OACS), 256},
		{"IdentifyController.SQES", unsafe.Offsetof(ic.SQES), 512},
		{"IdentifyController.CQES", unsafe.Offsetof(ic.CQES), 513},
		{"IdentifyController.NN", unsafe.Offsetof(ic.NN), 516},
		{"IdentifyController.ONCS", unsafe.Offsetof(ic.ONCS), 520},
		{"IdentifyController.VWC", unsafe.Offsetof(ic.VWC), 525},
		{"IdentifyController.SGLS", unsafe.Offsetof(ic.SGLS), 536},
		{"IdentifyController.SUBNQN", unsafe.Offsetof(ic.SUBNQN), 768},
		{"IdentifyController size", unsafe.Sizeof(ic), 4096},
		{"IdentifyNamespace.NCAP", unsafe.Offsetof(ns.NCAP), 8},
		{"IdentifyNamespace.NUSE", unsafe.Offsetof(ns.NUSE), 16},
		{"IdentifyNamespace.NLBAF", unsafe.Offsetof(ns.NLBAF), 25},
		{"IdentifyNamespace.FLBAS", unsafe.Offsetof(ns.FLBAS), 26},
		{"IdentifyNamespace.DLFEAT", unsafe.Offsetof(ns.DLFEAT), 33},
		{"IdentifyNamespace.NOIOB", unsafe.Offsetof(ns.NOIOB), 46},
		{"IdentifyNamespace.ANAGRPID", unsafe.Offsetof(ns.ANAGRPID), 92},
		{"IdentifyNamespace.NGUID", unsafe.Offsetof(ns.NGUID), 104},
		{"IdentifyNamespace.EUI64", unsafe.Offsetof(ns.EUI64), 120},
		{"IdentifyNamespace.LBAF", unsafe.Offsetof(ns.LBAF), 128},
		{"IdentifyNamespace size", unsafe.Sizeof(ns), 4096},
		{"SMARTLog.DataUnitsRead", unsafe.Offsetof(smart.DataUnitsRead), 32},
		{"SMARTLog.MediaErrors", unsafe.Offsetof(smart.MediaErrors), 160},
		{"SMARTLog.WarningTempTime", unsafe.Offsetof(smart.WarningTempTime), 192},
		{"SMARTLog.TempSensors", unsafe.Offsetof(smart.TempSensors), 200},
		{"SMARTLog size", unsafe.Sizeof(smart), 512},
		{"DSMRange.SLBA", unsafe.Offsetof(DSMRange{}.SLBA), 8},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %d, spec says %d", c.name, c.got, c.want)
		}
	}
}

func TestRegisterFields(t *testing.T) {
	c := MakeCAP(1023, true, 20, 2, 1, 0, 4)
	if c.MQES() != 1023 || !c.CQR() || c.TO() != 20 || c.DSTRD() != 2 || c.CSS() != 1 || c.MPSMIN() != 0 || c.MPSMAX() != 4 {
		t.Fatalf("CAP round trip: %v", c)
	}
	if got := SQTailDoorbell(3, 2); got != 0x1000+6*16 {
		t.Errorf("SQTailDoorbell(3, dstrd 2) = %#x", got)
	}
	if got := CQHeadDoorbell(0, 0); got != 0x1004 {
		t.Errorf("CQHeadDoorbell(0, 0) = %#x", got)
	}
	cc := MakeCC(true, 0, 0, CCShutdownNormal, SQESizeLog, CQESizeLog)
	if !cc.EN() || cc.SHN() != CCShutdownNormal || cc.IOSQES() != 6 || cc.IOCQES() != 4 || uint32(cc) != 0x00464001 {
		t.Errorf("CC = %#x (%v)", uint32(cc), cc)
	}
	a := MakeAQA(32, 64)
	if a.ASQS() != 32 || a.ACQS() != 64 || uint32(a) != 0x003F001F {
		t.Errorf("AQA = %#x", uint32(a))
	}
	s := CSTS(0).WithSHST(ShutdownStatusComplete) | CSTSReady
	if !s.RDY() || s.CFS() || s.SHST() != ShutdownStatusComplete {
		t.Errorf("CSTS = %v", s)
	}
	if !strings.Contains(CSTS(0xFFFFFFFF).String(), "not responding") {
		t.Errorf("all-ones CSTS not flagged: %v", CSTS(0xFFFFFFFF))
	}
}

func TestStatusString(t *testing.T) {
	cases := []struct {
		s    Status
		want string
	}{
		{MakeStatus(SCTGeneric, SCLBAOutOfRange), "LBA out of range (sct 0, sc 0x80)"},
		{MakeStatus(SCTCommandSpecific, SCInvalidQueueSize).WithDNR(), "invalid queue size (sct 1, sc 0x02) [do not retry]"},
		{MakeStatus(SCTMediaDataIntegrity, SCUnrecoveredReadError), "unrecovered read error (sct 2, sc 0x81)"},
		{MakeStatus(SCTVendorSpecific, 0xC0), "unknown status (sct 7, sc 0xc0)"},
	}
	for _, c := range cases {
		if got := c.s.String(); got != c.want {
			t.Errorf("%#x: got %q want %q", uint16(c.s), got, c.want)
		}
	}
	if !StatusSuccess.OK() || MakeStatus(SCTGeneric, SCInvalidField).OK() {
		t.Error("OK() wrong")
	}
	cpl := Completion{Status: uint16(MakeStatus(SCTGeneric, SCInvalidOpcode))<<1 | 1}
	if !cpl.Phase() || cpl.StatusField().SC() != SCInvalidOpcode {
		t.Errorf("completion status decode: %v", cpl.StatusField())
	}
}

func TestCommandFields(t *testing.T) {
	var c Command
	c.SetOpcodeCID(uint8(IORead), 0xBEEF)
	c.SetLBARange(0x1_2345_6789, 65536)
	if c.Opcode() != 0x02 || c.CID() != 0xBEEF || c.SLBA() != 0x1_2345_6789 || c.NLB() != 65536 || c.CDW12&0xFFFF != 0xFFFF {
		t.Fatalf("command fields: %+v", c)
	}
	c.SetCID(7)
	if c.CID() != 7 || c.Opcode() != 0x02 {
		t.Fatalf("SetCID clobbered CDW0: %#x", c.CDW0)
	}
	nsq, ncq := DecodeNumberOfQueues(NumberOfQueues(8, 4))
	if nsq != 8 || ncq != 4 {
		t.Errorf("number of queues round trip: %d %d", nsq, ncq)
	}
	var ns IdentifyNamespace
	ns.NLBAF = 1
	ns.LBAF[1] = MakeLBAFormat(8, 12, 0)
	ns.FLBAS = 1
	if ns.SectorSize() != 4096 || ns.CurrentFormat().MS() != 8 {
		t.Errorf("sector size %d ms %d", ns.SectorSize(), ns.CurrentFormat().MS())
	}
	var ic IdentifyController
	SetString(ic.MN[:], "nvmeperf sim")
	if ic.Model() != "nvmeperf sim" || ic.MN[39] != ' ' {
		t.Errorf("model %q", ic.Model())
	}
	ic.MDTS = 5
	if ic.MaxTransferBytes(4096) != 128<<10 {
		t.Errorf("MaxTransferBytes = %d", ic.MaxTransferBytes(4096))
	}
	var b [16]byte
	SetCounter128(&b, 1<<40+5)
	if Counter128(b) != 1<<40+5 {
		t.Error("Counter128 round trip")
	}
}
