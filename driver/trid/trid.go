// Package trid parses SPDK-style NVMe transport ID strings such as
// "trtype:PCIe traddr:0000:04:00.0" or
// "trtype:TCP adrfam:IPv4 traddr:192.168.100.8 trsvcid:4420 subnqn:nqn.2016-06.io.spdk:cnode1"
// into a canonical ID, and prints an ID back in a form Parse accepts again.
//
// The grammar, keys and defaults are described in docs/trid.md.
package trid

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Type is a transport type in its canonical spelling.
type Type string

// Supported transport types.
const (
	PCIe Type = "PCIe"
	TCP  Type = "TCP"
	RDMA Type = "RDMA"
	Sim  Type = "sim" // the simulated controller in driver/sim
)

// Address families (adrfam values), canonical spelling.
const (
	AdrFamIPv4 = "IPv4"
	AdrFamIPv6 = "IPv6"
	AdrFamIB   = "IB"
	AdrFamFC   = "FC"
)

// DefaultSvcID is the trsvcid used for TCP and RDMA when none is given: the
// IANA-assigned NVMe-oF port.
const DefaultSvcID = "4420"

// DiscoveryNQN is the well-known NQN of an NVMe-oF discovery controller, used as
// subnqn for TCP and RDMA when none is given (as SPDK's perf tool does).
const DiscoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"

// maxNQNLen is the longest NQN the NVMe base specification allows, in bytes.
const maxNQNLen = 223

// Keys, in the order String prints them.
const (
	keyTrType  = "trtype"
	keyAdrFam  = "adrfam"
	keyTrAddr  = "traddr"
	keyTrSvcID = "trsvcid"
	keySubNQN  = "subnqn"
	keyHostNQN = "hostnqn"
	keyNS      = "ns"
)

var standardKeys = []string{keyTrType, keyAdrFam, keyTrAddr, keyTrSvcID, keySubNQN, keyNS, keyHostNQN}

const keyList = "trtype adrfam traddr trsvcid subnqn ns hostnqn"

// PCIAddress is a PCI function address (domain:bus:device.function).
type PCIAddress struct {
	Domain   uint32
	Bus      uint8
	Device   uint8 // 0..0x1f
	Function uint8 // 0..7
}

// String prints the canonical lower-case form, e.g. "0000:04:00.0".
func (a PCIAddress) String() string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", a.Domain, a.Bus, a.Device, a.Function)
}

const pciForms = "want DDDD:BB:DD.F, DDDD.BB.DD.F or BB:DD.F in hex"

// ParsePCIAddress parses DDDD:BB:DD.F, DDDD.BB.DD.F or BB:DD.F (domain 0), all hex.
func ParsePCIAddress(s string) (PCIAddress, error) {
	a, problem := parsePCI(s)
	if problem != "" {
		return PCIAddress{}, fmt.Errorf("trid: %q %s", s, problem)
	}
	return a, nil
}

// parsePCI returns the address, or a description of what is wrong with s that
// reads after the quoted input ("is not a PCI address (...)").
func parsePCI(s string) (PCIAddress, string) {
	notPCI := "is not a PCI address (" + pciForms + ")"
	dot := strings.LastIndexByte(s, '.')
	if dot < 0 {
		return PCIAddress{}, notPCI
	}
	head, fn := s[:dot], s[dot+1:]
	var parts []string
	switch {
	case strings.Count(head, ":") == 2 && !strings.Contains(head, "."):
		parts = strings.Split(head, ":") // DDDD:BB:DD
	case strings.Count(head, ".") == 2 && !strings.Contains(head, ":"):
		parts = strings.Split(head, ".") // DDDD.BB.DD
	case strings.Count(head, ":") == 1 && !strings.Contains(head, "."):
		parts = append([]string{"0"}, strings.Split(head, ":")...) // BB:DD
	default:
		return PCIAddress{}, notPCI
	}
	domain, ok1 := parseHex(parts[0], 8)
	bus, ok2 := parseHex(parts[1], 2)
	dev, ok3 := parseHex(parts[2], 2)
	function, ok4 := parseHex(fn, 1)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return PCIAddress{}, notPCI
	}
	if dev > 0x1f {
		return PCIAddress{}, fmt.Sprintf("is not a PCI address: device 0x%x is above 0x1f", dev)
	}
	if function > 7 {
		return PCIAddress{}, fmt.Sprintf("is not a PCI address: function %d is above 7", function)
	}
	return PCIAddress{Domain: uint32(domain), Bus: uint8(bus), Device: uint8(dev), Function: uint8(function)}, ""
}

// parseHex accepts 1..maxDigits hex digits and nothing else (no sign, no 0x).
func parseHex(s string, maxDigits int) (uint64, bool) {
	if len(s) == 0 || len(s) > maxDigits {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}

// ID is a parsed transport ID. Parse fills defaults, so an ID from Parse is complete.
type ID struct {
	Type    Type
	AdrFam  string            // IPv4, IPv6, IB or FC; TCP and RDMA only
	TrAddr  string            // canonical PCI address for PCIe; IP address or host name for fabrics
	PCI     PCIAddress        // parsed when Type == PCIe
	TrSvcID string            // port for TCP and RDMA
	SubNQN  string            // subsystem NQN for TCP and RDMA
	HostNQN string            // optional host NQN for TCP and RDMA
	NSID    uint32            // 0 = all active namespaces
	Options map[string]string // extra keys, only for trtype sim; nil otherwise
}

// Parse parses whitespace-separated key:value pairs (key=value is accepted too, as
// SPDK does). The key ends at the first ':' or '=', so values may contain colons.
// Keys and the trtype and adrfam values are case-insensitive.
func Parse(s string) (ID, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return ID{}, fmt.Errorf(`trid: empty transport ID (want key:value pairs such as "trtype:PCIe traddr:0000:04:00.0")`)
	}
	vals := make(map[string]string, len(fields))
	pairs := make(map[string]string, len(fields)) // key -> the pair as written, for errors
	var extra []string                            // non-standard keys, in input order
	for _, f := range fields {
		sep := strings.IndexAny(f, ":=")
		if sep < 0 {
			return ID{}, fmt.Errorf("trid: %q is not a key:value pair", f)
		}
		key, val := asciiLower(f[:sep]), f[sep+1:]
		if key == "" {
			return ID{}, fmt.Errorf("trid: %q has no key (want key:value)", f)
		}
		if val == "" {
			return ID{}, fmt.Errorf("trid: %q has no value (write key:value with no space after the colon)", f[:sep])
		}
		if prev, dup := pairs[key]; dup {
			return ID{}, fmt.Errorf("trid: key %q given twice (%q and %q)", key, prev, f)
		}
		vals[key] = val
		pairs[key] = f
		if !isStandardKey(key) {
			extra = append(extra, key)
		}
	}

	var id ID
	tt, ok := vals[keyTrType]
	if !ok && len(extra) > 0 {
		// Most likely a misspelt trtype: name the odd key rather than the missing one.
		return ID{}, fmt.Errorf("trid: unknown key %q in %q (keys: %s)", extra[0], pairs[extra[0]], keyList)
	}
	if !ok {
		return ID{}, fmt.Errorf("trid: %q has no trtype (want trtype:PCIe, TCP, RDMA or sim)", s)
	}
	switch asciiLower(tt) {
	case "pcie":
		id.Type = PCIe
	case "tcp":
		id.Type = TCP
	case "rdma":
		id.Type = RDMA
	case "sim":
		id.Type = Sim
	case "fc":
		return ID{}, fmt.Errorf("trid: %q: the FC transport is not supported (want PCIe, TCP, RDMA or sim)", pairs[keyTrType])
	default:
		return ID{}, fmt.Errorf("trid: %q: unknown transport type (want PCIe, TCP, RDMA or sim)", pairs[keyTrType])
	}

	if id.Type != Sim && len(extra) > 0 {
		return ID{}, fmt.Errorf("trid: unknown key %q in %q (keys: %s)", extra[0], pairs[extra[0]], keyList)
	}

	// Fabric-only keys make no sense for a local device; refuse rather than ignore.
	if id.Type == PCIe || id.Type == Sim {
		for _, k := range []string{keyAdrFam, keyTrSvcID, keySubNQN, keyHostNQN} {
			if p, given := pairs[k]; given {
				return ID{}, fmt.Errorf("trid: %q does not apply to trtype %s (keys for %s: trtype traddr ns)", p, id.Type, id.Type)
			}
		}
	}

	if v, given := vals[keyNS]; given {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 || n == 0xffffffff {
			return ID{}, fmt.Errorf("trid: %q is not a namespace ID (want a decimal number from 1 to 4294967294)", pairs[keyNS])
		}
		id.NSID = uint32(n)
	}

	switch id.Type {
	case PCIe:
		v, given := vals[keyTrAddr]
		if !given {
			return ID{}, fmt.Errorf("trid: trtype PCIe needs traddr (e.g. traddr:0000:04:00.0)")
		}
		a, problem := parsePCI(v)
		if problem != "" {
			return ID{}, fmt.Errorf("trid: %q %s", pairs[keyTrAddr], problem)
		}
		id.PCI = a
		id.TrAddr = a.String()
	case TCP, RDMA:
		if err := parseFabric(&id, vals, pairs); err != nil {
			return ID{}, err
		}
	case Sim:
		id.TrAddr = vals[keyTrAddr] // optional free-form name, kept as written
		for _, k := range extra {
			if !isOptionKey(k) {
				return ID{}, fmt.Errorf("trid: option key %q in %q has characters other than a-z 0-9 _ - .", k, pairs[k])
			}
			if id.Options == nil {
				id.Options = make(map[string]string, len(extra))
			}
			id.Options[k] = vals[k]
		}
	}
	return id, nil
}

// parseFabric fills the TCP/RDMA fields of id, applying defaults.
func parseFabric(id *ID, vals, pairs map[string]string) error {
	addr, given := vals[keyTrAddr]
	if !given {
		return fmt.Errorf("trid: trtype %s needs traddr (an IP address or host name)", id.Type)
	}
	if fam, given := vals[keyAdrFam]; given {
		switch asciiLower(fam) {
		case "ipv4":
			id.AdrFam = AdrFamIPv4
		case "ipv6":
			id.AdrFam = AdrFamIPv6
		case "ib":
			id.AdrFam = AdrFamIB
		case "fc":
			id.AdrFam = AdrFamFC
		default:
			return fmt.Errorf("trid: %q: unknown address family (want IPv4, IPv6, IB or FC)", pairs[keyAdrFam])
		}
	}
	if ip, err := netip.ParseAddr(addr); err == nil {
		fam := AdrFamIPv4
		if ip.Is6() {
			fam = AdrFamIPv6
		}
		if id.AdrFam == "" {
			id.AdrFam = fam
		} else if (id.AdrFam == AdrFamIPv4 || id.AdrFam == AdrFamIPv6) && id.AdrFam != fam {
			return fmt.Errorf("trid: %q is an %s address but adrfam is %s", pairs[keyTrAddr], fam, id.AdrFam)
		}
		id.TrAddr = ip.String()
	} else {
		if id.AdrFam == AdrFamIPv6 || !isHostName(addr) {
			return fmt.Errorf("trid: %q is not an IP address or host name", pairs[keyTrAddr])
		}
		if id.AdrFam == "" {
			id.AdrFam = AdrFamIPv4
		}
		id.TrAddr = addr
	}

	id.TrSvcID = DefaultSvcID
	if v, given := vals[keyTrSvcID]; given {
		port, err := strconv.ParseUint(v, 10, 16)
		if err != nil || port == 0 {
			return fmt.Errorf("trid: %q is not a port (want a decimal number from 1 to 65535)", pairs[keyTrSvcID])
		}
		id.TrSvcID = strconv.FormatUint(port, 10)
	}

	id.SubNQN = DiscoveryNQN
	if v, given := vals[keySubNQN]; given {
		if err := checkNQN(v, pairs[keySubNQN]); err != nil {
			return err
		}
		id.SubNQN = v
	}
	if v, given := vals[keyHostNQN]; given {
		if err := checkNQN(v, pairs[keyHostNQN]); err != nil {
			return err
		}
		id.HostNQN = v
	}
	return nil
}

// checkNQN applies the NVMe base specification's outer NQN rules: "nqn." prefix,
// at most 223 bytes, printable ASCII.
func checkNQN(v, pair string) error {
	if !strings.HasPrefix(v, "nqn.") {
		return fmt.Errorf("trid: %q is not an NQN (want nqn.yyyy-mm.reverse.domain:name)", pair)
	}
	if len(v) > maxNQNLen {
		return fmt.Errorf("trid: %q is not an NQN: %d bytes long, at most %d allowed", pair, len(v), maxNQNLen)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return fmt.Errorf("trid: %q is not an NQN: byte %d is not printable ASCII", pair, i)
		}
	}
	return nil
}

// isHostName accepts DNS-style names: letters, digits, '-' and '.', starting with a
// letter or digit, and not made of digits and dots only (that is a bad IPv4 address).
func isHostName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		isLetter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		alnum := isLetter || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '-' && c != '.') {
			return false
		}
		letter = letter || isLetter || c == '-'
	}
	return letter
}

func isStandardKey(k string) bool {
	for _, s := range standardKeys {
		if k == s {
			return true
		}
	}
	return false
}

func isOptionKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// asciiLower lower-cases ASCII letters only, so that no Unicode case folding can
// turn an odd key into a standard one.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// String prints the ID with keys in a fixed order (trtype adrfam traddr trsvcid
// subnqn hostnqn ns, then sim options sorted by key), in a form Parse accepts.
func (id ID) String() string {
	var b strings.Builder
	add := func(k, v string) {
		if v == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte(':')
		b.WriteString(v)
	}
	add(keyTrType, string(id.Type))
	add(keyAdrFam, id.AdrFam)
	addr := id.TrAddr
	if id.Type == PCIe && addr == "" {
		addr = id.PCI.String()
	}
	add(keyTrAddr, addr)
	add(keyTrSvcID, id.TrSvcID)
	add(keySubNQN, id.SubNQN)
	add(keyHostNQN, id.HostNQN)
	if id.NSID != 0 {
		add(keyNS, strconv.FormatUint(uint64(id.NSID), 10))
	}
	if len(id.Options) > 0 {
		keys := make([]string, 0, len(id.Options))
		for k := range id.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			add(k, id.Options[k])
		}
	}
	return b.String()
}
