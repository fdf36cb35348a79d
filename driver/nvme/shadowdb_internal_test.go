package nvme

import "testing"

// needEvent against its definition: a doorbell write is needed exactly when eventIdx is
// one of the values the doorbell passes on its way from old to newIdx (old included,
// newIdx not), counting modulo 2^16 — so across the 16-bit wrap too.
func TestNeedEventAcross16BitWrap(t *testing.T) {
	passes := func(ei, newIdx, old uint16) bool {
		for v := old; v != newIdx; v++ {
			if v == ei {
				return true
			}
		}
		return false
	}
	moves := [][2]uint16{ // old, new
		{0, 1}, {10, 20}, {65530, 65535}, {65534, 1}, {65535, 0}, {65000, 300}, {5, 4}, {7, 7},
	}
	for _, m := range moves {
		old, newIdx := m[0], m[1]
		for ei := 0; ei < 1<<16; ei++ {
			if got, want := needEvent(uint16(ei), newIdx, old), passes(uint16(ei), newIdx, old); got != want {
				t.Fatalf("needEvent(eventIdx %d, new %d, old %d) = %t, want %t", ei, newIdx, old, got, want)
			}
		}
	}
	// The cases named in the spec's terms: the host moves the tail from 65534 over the
	// wrap to 1; a device waiting at 65535 or 0 must be told, one at 1 or 65533 not.
	for ei, want := range map[uint16]bool{65535: true, 0: true, 65534: true, 1: false, 65533: false} {
		if got := needEvent(ei, 1, 65534); got != want {
			t.Errorf("tail 65534 -> 1, EventIdx %d: need %t, want %t", ei, got, want)
		}
	}
}
