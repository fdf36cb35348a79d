package nvmetcp

import (
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
)

// hostNQNPrefix is the UUID-based NQN form (NVMe Base 2.0, section 4.5).
const hostNQNPrefix = "nqn.2014-08.org.nvmexpress:uuid:"

// fallbackHostUUID is the host UUID of a machine without a machine ID
// (/etc/machine-id): fixed and documented (docs/tcp.md), so a run is repeatable.
const fallbackHostUUID = "6e766d65-7065-4266-8000-000000000001"

// DefaultHostNQN is this machine's host NQN and host ID: a UUID derived from
// /etc/machine-id (SHA-256 of it and "nvmeperf", shaped as a version 4 UUID), so it is
// the same on every run and differs between machines without revealing the machine
// ID; fallbackHostUUID when there is none.
func DefaultHostNQN() (string, [16]byte) {
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		b, err := os.ReadFile(p)
		if id := strings.TrimSpace(string(b)); err == nil && id != "" {
			sum := sha256.Sum256([]byte("nvmeperf host " + id))
			var u [16]byte
			copy(u[:], sum[:16])
			u[6] = u[6]&0x0F | 0x40
			u[8] = u[8]&0x3F | 0x80
			return hostNQNPrefix + formatUUID(u), u
		}
	}
	u, _ := parseUUID(fallbackHostUUID)
	return hostNQNPrefix + fallbackHostUUID, u
}

// HostIDFor is the host ID that goes with a host NQN: its UUID for the UUID form, else
// a UUID derived from the NQN (the same NQN always gets the same ID).
func HostIDFor(nqn string) [16]byte {
	if rest, ok := strings.CutPrefix(nqn, hostNQNPrefix); ok {
		if u, ok := parseUUID(rest); ok {
			return u
		}
	}
	sum := sha256.Sum256([]byte("nvmeperf hostid " + nqn))
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0F | 0x40
	u[8] = u[8]&0x3F | 0x80
	return u
}

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 {
		return u, false
	}
	for i := range 16 {
		var v byte
		for _, c := range h[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'a' && c <= 'f':
				v |= byte(c-'a') + 10
			case c >= 'A' && c <= 'F':
				v |= byte(c-'A') + 10
			default:
				return u, false
			}
		}
		u[i] = v
	}
	return u, true
}
