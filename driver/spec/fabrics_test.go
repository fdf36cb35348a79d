package spec

import (
	"encoding/binary"
	"testing"
)

func TestFabricsCommandsRoundTrip(t *testing.T) {
	cc := ConnectCommand{Opcode: OpcodeFabrics, CID: 7, FCType: uint8(FabricsConnect), QID: 3, SQSIZE: 127,
		CATTR: ConnectDisableSQFlowCtrl, KATO: 120000}
	cc.SGL1[15] = MakeSGLID(SGLTypeDataBlock, SGLSubtypeOffset)
	binary.LittleEndian.PutUint32(cc.SGL1[8:], ConnectDataSize)
	s := cc.ToCommand()
	if s.Opcode() != OpcodeFabrics || s.CID() != 7 || s.FabricsType() != FabricsConnect {
		t.Fatalf("SQE %+v", s)
	}
	if sgl := s.SGL(); sgl.Length != ConnectDataSize || sgl.Type() != SGLTypeDataBlock || sgl.Subtype() != SGLSubtypeOffset {
		t.Fatalf("SGL %+v", sgl)
	}
	if back := ConnectFromCommand(&s); back != cc {
		t.Fatalf("round trip %+v, want %+v", back, cc)
	}
	ps := PropertySetCommand{Opcode: OpcodeFabrics, CID: 9, FCType: uint8(FabricsPropertySet), ATTRIB: PropertySize8, OFST: RegCC, VALUE: 0x1122334455667788}
	s = ps.ToCommand()
	if back := PropertySetFromCommand(&s); back != ps {
		t.Fatalf("Property Set round trip %+v", back)
	}
	pg := PropertyGetCommand{Opcode: OpcodeFabrics, CID: 10, FCType: uint8(FabricsPropertyGet), OFST: RegCSTS}
	s = pg.ToCommand()
	if back := PropertyGetFromCommand(&s); back != pg {
		t.Fatalf("Property Get round trip %+v", back)
	}
}

func TestConnectDataWireLayout(t *testing.T) {
	var d ConnectData
	d.HostID[0], d.HostID[15] = 0xAA, 0xBB
	d.CNTLID = 0xFFFF
	d.SetNQNs("nqn.2026-11.io.nvmeperf:sim", "nqn.2014-08.org.nvmexpress:uuid:1")
	b := make([]byte, ConnectDataSize)
	d.Marshal(b)
	if b[0] != 0xAA || b[15] != 0xBB || binary.LittleEndian.Uint16(b[16:]) != 0xFFFF {
		t.Fatalf("host ID / CNTLID bytes % x", b[:18])
	}
	if string(b[256:256+27]) != "nqn.2026-11.io.nvmeperf:sim" || b[256+27] != 0 {
		t.Fatalf("SUBNQN at 256: %q", b[256:300])
	}
	if string(b[512:512+33]) != "nqn.2014-08.org.nvmexpress:uuid:1" || b[512+33] != 0 {
		t.Fatalf("HOSTNQN at 512: %q", b[512:560])
	}
	var back ConnectData
	if !back.Unmarshal(b) || back != d {
		t.Fatal("round trip differs")
	}
	if back.Unmarshal(b[:100]) {
		t.Fatal("short data accepted")
	}
}

func TestDiscoveryLogWireLayout(t *testing.T) {
	e := DiscoveryLogEntry{TRTYPE: TransportTCP, ADRFAM: AddressFamilyIPv4, SUBTYPE: SubsystemTypeNVM, PORTID: 1, CNTLID: 0xFFFF, ASQSZ: 32}
	SetString(e.TRSVCID[:], "4420")
	SetString(e.TRADDR[:], "192.168.1.2")
	copy(e.SUBNQN[:], "nqn.2026-11.io.nvmeperf:sim")
	b := make([]byte, DiscoveryLogEntrySize)
	e.Marshal(b)
	if b[0] != 3 || b[2] != 2 || string(b[32:36]) != "4420" || string(b[512:523]) != "192.168.1.2" || string(b[256:259]) != "nqn" {
		t.Fatalf("entry bytes wrong")
	}
	var back DiscoveryLogEntry
	back.Unmarshal(b)
	if back.Address() != "192.168.1.2" || back.ServiceID() != "4420" || back.SubsystemNQN() != "nqn.2026-11.io.nvmeperf:sim" {
		t.Fatalf("decoded %q %q %q", back.Address(), back.ServiceID(), back.SubsystemNQN())
	}
	h := DiscoveryLogHeader{GENCTR: 5, NUMREC: 2}
	hb := make([]byte, DiscoveryLogHeaderSize)
	h.Marshal(hb)
	var hback DiscoveryLogHeader
	if !hback.Unmarshal(hb) || hback != h {
		t.Fatalf("header round trip %+v", hback)
	}
}
