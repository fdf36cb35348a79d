package nvmetcp

import (
	"strings"
	"testing"
)

func TestDefaultHostNQNIsStableAndWellFormed(t *testing.T) {
	nqn, id := DefaultHostNQN()
	nqn2, id2 := DefaultHostNQN()
	if nqn != nqn2 || id != id2 {
		t.Fatalf("two calls differ: %s %x, %s %x", nqn, id, nqn2, id2)
	}
	rest, ok := strings.CutPrefix(nqn, hostNQNPrefix)
	if !ok || len(rest) != 36 {
		t.Fatalf("host NQN %q is not the UUID form", nqn)
	}
	if u, ok := parseUUID(rest); !ok || u != id {
		t.Fatalf("host ID %x is not the NQN's UUID %q", id, rest)
	}
	if id[6]>>4 != 4 || id[8]>>6 != 2 {
		t.Fatalf("UUID %s is not version 4, RFC 4122 variant", rest)
	}
	if HostIDFor(nqn) != id {
		t.Fatal("HostIDFor does not give the default NQN's own ID")
	}
	if a, b := HostIDFor("nqn.2016-06.io.spdk:host1"), HostIDFor("nqn.2016-06.io.spdk:host2"); a == b || a != HostIDFor("nqn.2016-06.io.spdk:host1") {
		t.Fatal("IDs of other NQNs are not stable and distinct")
	}
	if got := formatUUID(HostIDFor(hostNQNPrefix + "6E766D65-7065-4266-8000-000000000001")); got != fallbackHostUUID {
		t.Fatalf("upper-case UUID NQN gives ID %s", got)
	}
}
