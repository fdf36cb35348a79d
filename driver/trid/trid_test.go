package trid

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		in   string
		want ID
		str  string // canonical String()
	}{
		{
			in:   "trtype:PCIe traddr:0000:04:00.0",
			want: ID{Type: PCIe, TrAddr: "0000:04:00.0", PCI: PCIAddress{0, 4, 0, 0}},
			str:  "trtype:PCIe traddr:0000:04:00.0",
		},
		{
			in:   "  TRTYPE:pcie\tTrAddr:0000.AF.1F.7  ns:3 ",
			want: ID{Type: PCIe, TrAddr: "0000:af:1f.7", PCI: PCIAddress{0, 0xaf, 0x1f, 7}, NSID: 3},
			str:  "trtype:PCIe traddr:0000:af:1f.7 ns:3",
		},
		{
			in:   "trtype=PCIE traddr=4:0.1",
			want: ID{Type: PCIe, TrAddr: "0000:04:00.1", PCI: PCIAddress{0, 4, 0, 1}},
			str:  "trtype:PCIe traddr:0000:04:00.1",
		},
		{
			in:   "trtype:pcie traddr:10000:01:00.0",
			want: ID{Type: PCIe, TrAddr: "10000:01:00.0", PCI: PCIAddress{0x10000, 1, 0, 0}},
			str:  "trtype:PCIe traddr:10000:01:00.0",
		},
		{
			in: "trtype:TCP adrfam:IPv4 traddr:192.168.100.8 trsvcid:4420 subnqn:nqn.2016-06.io.spdk:cnode1",
			want: ID{Type: TCP, AdrFam: AdrFamIPv4, TrAddr: "192.168.100.8", TrSvcID: "4420",
				SubNQN: "nqn.2016-06.io.spdk:cnode1"},
			str: "trtype:TCP adrfam:IPv4 traddr:192.168.100.8 trsvcid:4420 subnqn:nqn.2016-06.io.spdk:cnode1",
		},
		{
			in:   "trtype:tcp traddr:10.0.0.1",
			want: ID{Type: TCP, AdrFam: AdrFamIPv4, TrAddr: "10.0.0.1", TrSvcID: DefaultSvcID, SubNQN: DiscoveryNQN},
			str:  "trtype:TCP adrfam:IPv4 traddr:10.0.0.1 trsvcid:4420 subnqn:nqn.2014-08.org.nvmexpress.discovery",
		},
		{
			in: "trtype:rdma adrfam:ipv6 traddr:FE80::0001 trsvcid:04421 hostnqn:nqn.2014-08.org.nvmexpress:uuid:1 ns:1",
			want: ID{Type: RDMA, AdrFam: AdrFamIPv6, TrAddr: "fe80::1", TrSvcID: "4421", SubNQN: DiscoveryNQN,
				HostNQN: "nqn.2014-08.org.nvmexpress:uuid:1", NSID: 1},
			str: "trtype:RDMA adrfam:IPv6 traddr:fe80::1 trsvcid:4421 subnqn:nqn.2014-08.org.nvmexpress.discovery hostnqn:nqn.2014-08.org.nvmexpress:uuid:1 ns:1",
		},
		{
			in:   "trtype:TCP traddr:::1",
			want: ID{Type: TCP, AdrFam: AdrFamIPv6, TrAddr: "::1", TrSvcID: DefaultSvcID, SubNQN: DiscoveryNQN},
			str:  "trtype:TCP adrfam:IPv6 traddr:::1 trsvcid:4420 subnqn:nqn.2014-08.org.nvmexpress.discovery",
		},
		{
			in:   "trtype:TCP traddr:target-1.lab",
			want: ID{Type: TCP, AdrFam: AdrFamIPv4, TrAddr: "target-1.lab", TrSvcID: DefaultSvcID, SubNQN: DiscoveryNQN},
			str:  "trtype:TCP adrfam:IPv4 traddr:target-1.lab trsvcid:4420 subnqn:nqn.2014-08.org.nvmexpress.discovery",
		},
		{
			in:   "trtype:RDMA adrfam:IB traddr:whatever",
			want: ID{Type: RDMA, AdrFam: AdrFamIB, TrAddr: "whatever", TrSvcID: DefaultSvcID, SubNQN: DiscoveryNQN},
			str:  "trtype:RDMA adrfam:IB traddr:whatever trsvcid:4420 subnqn:nqn.2014-08.org.nvmexpress.discovery",
		},
		{
			in:   "trtype:sim namespaces:2 LBASize:4096 model:nand",
			want: ID{Type: Sim, Options: map[string]string{"namespaces": "2", "lbasize": "4096", "model": "nand"}},
			str:  "trtype:sim lbasize:4096 model:nand namespaces:2",
		},
		{
			in:   "trtype:SIM",
			want: ID{Type: Sim},
			str:  "trtype:sim",
		},
		{
			in:   "trtype:sim traddr:My:Sim ns:2 fail-rate:0.5",
			want: ID{Type: Sim, TrAddr: "My:Sim", NSID: 2, Options: map[string]string{"fail-rate": "0.5"}},
			str:  "trtype:sim traddr:My:Sim ns:2 fail-rate:0.5",
		},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.str {
			t.Errorf("Parse(%q).String()\n got %q\nwant %q", tc.in, s, tc.str)
		}
		again, err := Parse(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("round trip of %q: got %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string // exact error, or substrings separated by "|"
	}{
		{"", `trid: empty transport ID`},
		{"   \t ", `trid: empty transport ID`},
		{"trtype:PCIe traddr:0000:4:00",
			`trid: "traddr:0000:4:00" is not a PCI address (want DDDD:BB:DD.F, DDDD.BB.DD.F or BB:DD.F in hex)`},
		{"trtpye:PCIe",
			`trid: unknown key "trtpye" in "trtpye:PCIe" (keys: trtype adrfam traddr trsvcid subnqn ns hostnqn)`},
		{"trtype:PCIe traddr:0000:04:00.0 bogus:1",
			`trid: unknown key "bogus" in "bogus:1" (keys: trtype adrfam traddr trsvcid subnqn ns hostnqn)`},
		{"trtype:PCIe traddr:", `trid: "traddr" has no value`},
		{"trtype:PCIe traddr", `trid: "traddr" is not a key:value pair`},
		{"trtype:PCIe :x", `trid: ":x" has no key`},
		{"traddr:0000:04:00.0", `has no trtype (want trtype:PCIe, TCP, RDMA or sim)`},
		{"trtype:PCIe trtype:TCP", `trid: key "trtype" given twice ("trtype:PCIe" and "trtype:TCP")`},
		{"trtype:PCIe TRADDR:0000:04:00.0 traddr:0000:05:00.0", `key "traddr" given twice`},
		{"trtype:FC traddr:x", `trid: "trtype:FC": the FC transport is not supported (want PCIe, TCP, RDMA or sim)`},
		{"trtype:usb", `trid: "trtype:usb": unknown transport type (want PCIe, TCP, RDMA or sim)`},
		{"trtype:PCIe", `trid: trtype PCIe needs traddr`},
		{"trtype:TCP", `trid: trtype TCP needs traddr`},
		{"trtype:RDMA subnqn:nqn.x", `trid: trtype RDMA needs traddr`},
		{"trtype:PCIe traddr:0000:04:20.0", `"traddr:0000:04:20.0" is not a PCI address: device 0x20 is above 0x1f`},
		{"trtype:PCIe traddr:0000:04:00.8", `"traddr:0000:04:00.8" is not a PCI address: function 8 is above 7`},
		{"trtype:PCIe traddr:0000:100:00.0", `is not a PCI address (want`},
		{"trtype:PCIe traddr:0000:04.00.0", `is not a PCI address (want`},
		{"trtype:PCIe traddr:0x00:04:00.0", `is not a PCI address (want`},
		{"trtype:PCIe traddr:000g:04:00.0", `is not a PCI address (want`},
		{"trtype:PCIe traddr:123456789:04:00.0", `is not a PCI address (want`},
		{"trtype:PCIe traddr:0000:04:00.", `is not a PCI address (want`},
		{"trtype:PCIe traddr:0000:04:00.0 adrfam:IPv4", `trid: "adrfam:IPv4" does not apply to trtype PCIe`},
		{"trtype:sim subnqn:nqn.a", `trid: "subnqn:nqn.a" does not apply to trtype sim`},
		{"trtype:PCIe traddr:0000:04:00.0 ns:0", `trid: "ns:0" is not a namespace ID (want a decimal number from 1 to 4294967294)`},
		{"trtype:PCIe traddr:0000:04:00.0 ns:-1", `"ns:-1" is not a namespace ID`},
		{"trtype:PCIe traddr:0000:04:00.0 ns:0x1", `"ns:0x1" is not a namespace ID`},
		{"trtype:PCIe traddr:0000:04:00.0 ns:4294967295", `"ns:4294967295" is not a namespace ID`},
		{"trtype:TCP adrfam:IPX traddr:1.2.3.4", `trid: "adrfam:IPX": unknown address family (want IPv4, IPv6, IB or FC)`},
		{"trtype:TCP adrfam:IPv6 traddr:1.2.3.4", `trid: "traddr:1.2.3.4" is an IPv4 address but adrfam is IPv6`},
		{"trtype:TCP adrfam:IPv4 traddr:::1", `is an IPv6 address but adrfam is IPv4`},
		{"trtype:TCP traddr:1.2.3.400", `trid: "traddr:1.2.3.400" is not an IP address or host name`},
		{"trtype:TCP traddr:[::1]", `is not an IP address or host name`},
		{"trtype:TCP traddr:1.2.3.4 trsvcid:0", `trid: "trsvcid:0" is not a port (want a decimal number from 1 to 65535)`},
		{"trtype:TCP traddr:1.2.3.4 trsvcid:65536", `"trsvcid:65536" is not a port`},
		{"trtype:TCP traddr:1.2.3.4 trsvcid:http", `"trsvcid:http" is not a port`},
		{"trtype:TCP traddr:1.2.3.4 subnqn:cnode1", `trid: "subnqn:cnode1" is not an NQN (want nqn.yyyy-mm.reverse.domain:name)`},
		{"trtype:TCP traddr:1.2.3.4 hostnqn:host", `"hostnqn:host" is not an NQN`},
		{"trtype:TCP traddr:1.2.3.4 subnqn:nqn." + strings.Repeat("a", 220), `is not an NQN: 224 bytes long, at most 223 allowed`},
		{"trtype:TCP traddr:1.2.3.4 subnqn:nqn.\x01", `is not an NQN: byte 4 is not printable ASCII`},
		{"trtype:TCP traddr:1.2.3.4 namespaces:2", `unknown key "namespaces"`},
		{"trtype:sim Bad/Key:1", `trid: option key "bad/key" in "Bad/Key:1" has characters other than a-z 0-9 _ - .`},
		{"trtype:sim model:a MODEL:b", `key "model" given twice`},
	}
	for _, tc := range tests {
		id, err := Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want error %q", tc.in, id, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error\n got %q\nwant it to contain %q", tc.in, err, tc.want)
		}
		if !strings.HasPrefix(err.Error(), "trid: ") {
			t.Errorf("Parse(%q) error %q lacks the package prefix", tc.in, err)
		}
		if !reflect.DeepEqual(id, ID{}) {
			t.Errorf("Parse(%q) returned a non-zero ID with an error: %+v", tc.in, id)
		}
	}
}

func TestParsePCIAddress(t *testing.T) {
	good := map[string]PCIAddress{
		"0000:04:00.0":     {0, 4, 0, 0},
		"0000.04.00.0":     {0, 4, 0, 0},
		"04:00.0":          {0, 4, 0, 0},
		"ABCD:EF:1f.7":     {0xabcd, 0xef, 0x1f, 7},
		"0:0:0.0":          {0, 0, 0, 0},
		"ffffffff:ff:1f.7": {0xffffffff, 0xff, 0x1f, 7},
	}
	for in, want := range good {
		got, err := ParsePCIAddress(in)
		if err != nil || got != want {
			t.Errorf("ParsePCIAddress(%q) = %+v, %v; want %+v", in, got, err, want)
			continue
		}
		back, err := ParsePCIAddress(got.String())
		if err != nil || back != got {
			t.Errorf("round trip %q -> %q -> %+v, %v", in, got.String(), back, err)
		}
	}
	if s := (PCIAddress{Domain: 0, Bus: 0xaf, Device: 3, Function: 1}).String(); s != "0000:af:03.1" {
		t.Errorf("String() = %q, want 0000:af:03.1", s)
	}
	bad := map[string]string{
		"":              "is not a PCI address (want",
		"0000:04:00":    "is not a PCI address (want",
		"04.00.0":       "is not a PCI address (want",
		"0000:04:00:0":  "is not a PCI address (want",
		"0000:04:00.00": "is not a PCI address (want",
		"0000:-4:00.0":  "is not a PCI address (want",
		"0000: 4:00.0":  "is not a PCI address (want",
		"04:ff.0":       "device 0xff is above 0x1f",
		"04:00.f":       "function 15 is above 7",
	}
	for in, want := range bad {
		_, err := ParsePCIAddress(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "trid: \""+in+"\"") {
			t.Errorf("ParsePCIAddress(%q) error = %v, want one quoting the input and containing %q", in, err, want)
		}
	}
}

// A hand-built PCIe ID without TrAddr still prints something Parse accepts.
func TestStringFromPCIField(t *testing.T) {
	id := ID{Type: PCIe, PCI: PCIAddress{Bus: 0x81, Device: 0, Function: 1}}
	got, err := Parse(id.String())
	if err != nil || got.TrAddr != "0000:81:00.1" || got.PCI != id.PCI {
		t.Fatalf("Parse(%q) = %+v, %v", id.String(), got, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"trtype:PCIe traddr:0000:04:00.0",
		"trtype:pcie traddr:04:00.0 ns:1",
		"trtype:TCP adrfam:IPv4 traddr:192.168.100.8 trsvcid:4420 subnqn:nqn.2016-06.io.spdk:cnode1",
		"trtype:RDMA adrfam:IPv6 traddr:fe80::1%eth0 hostnqn:nqn.2014-08.org.nvmexpress:uuid:x",
		"trtype:sim namespaces:2 lbasize:4096 model:nand",
		"trtype=sim traddr=x=y a:b",
		"trtype:TCP traddr:host.example",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "trid: ") {
				t.Fatalf("Parse(%q) error %q lacks prefix", s, err)
			}
			return
		}
		text := id.String()
		again, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q does not parse: %v", s, text, err)
		}
		if !reflect.DeepEqual(again, id) {
			t.Fatalf("round trip of %q via %q:\n got %+v\nwant %+v", s, text, again, id)
		}
		if again.String() != text {
			t.Fatalf("String not stable: %q then %q", text, again.String())
		}
	})
}
