package spec

import (
	"math/rand"
	"testing"
)

// crcBitwise is the textbook bit-at-a-time CRC-16/T10-DIF the table version must match.
func crcBitwise(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for i := 0; i < 8; i++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x8BB7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func TestCRC16T10DIF(t *testing.T) {
	// The catalogued check value of CRC-16/T10-DIF.
	if got := CRC16T10DIF(0, []byte("123456789")); got != 0xD0DB {
		t.Fatalf("check value %#04x, want 0xd0db", got)
	}
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 7, 8, 9, 63, 512, 520, 4096} {
		b := make([]byte, n)
		rng.Read(b)
		want := crcBitwise(b)
		if got := CRC16T10DIF(0, b); got != want {
			t.Errorf("%d bytes: %#04x, want %#04x", n, got, want)
		}
		// In pieces, as a block split over PRP pages is summed.
		for cut := 0; cut <= n; cut += 1 + n/5 {
			if got := CRC16T10DIF(CRC16T10DIF(0, b[:cut]), b[cut:]); got != want {
				t.Errorf("%d bytes cut at %d: %#04x, want %#04x", n, cut, got, want)
			}
		}
	}
}

func TestPIRoundTripAndChecks(t *testing.T) {
	var b [8]byte
	pi := PI{Guard: 0x1234, AppTag: 0x5678, RefTag: 0x9abcdef0}
	PutPI(b[:], pi)
	if b != [8]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0} {
		t.Fatalf("wire bytes %x: fields must be big-endian", b)
	}
	if GetPI(b[:]) != pi {
		t.Fatal("GetPI does not invert PutPI")
	}
	all := uint8(RWPRCHKMask >> RWPRCHKShift)
	bad := pi
	bad.Guard++
	if f := CheckPI(PIType1, all, 0xFFFF, bad, pi); f != PIGuard || f.Status().SC() != SCGuardCheckError {
		t.Errorf("guard: %v", f)
	}
	if f := CheckPI(PIType1, all&^uint8(RWPRCHKGuard>>RWPRCHKShift), 0xFFFF, bad, pi); f != 0 {
		t.Errorf("guard not asked for but reported: %v", f)
	}
	bad = pi
	bad.AppTag ^= 0x00F0
	if f := CheckPI(PIType2, all, 0xFFFF, bad, pi); f != PIAppTag || f.Status().SC() != SCApplicationTagError {
		t.Errorf("app tag: %v", f)
	}
	if f := CheckPI(PIType2, all, 0xFF0F, bad, pi); f != 0 {
		t.Errorf("app tag outside the mask reported: %v", f)
	}
	bad = pi
	bad.RefTag++
	if f := CheckPI(PIType1, all, 0xFFFF, bad, pi); f != PIRefTag || f.Status().SC() != SCReferenceTagError {
		t.Errorf("ref tag: %v", f)
	}
	if f := CheckPI(PIType3, all, 0xFFFF, bad, pi); f != 0 {
		t.Errorf("type 3 has no reference tag check, got %v", f)
	}
	esc := PI{Guard: 0, AppTag: 0xFFFF, RefTag: 1}
	if CheckPI(PIType1, all, 0xFFFF, esc, pi) != 0 {
		t.Error("type 1 with app tag FFFFh must not be checked")
	}
	if CheckPI(PIType3, all, 0xFFFF, esc, pi) == 0 {
		t.Error("type 3 escapes only with the reference tag FFFFFFFFh too")
	}
	esc.RefTag = 0xFFFFFFFF
	if CheckPI(PIType3, all, 0xFFFF, esc, pi) != 0 {
		t.Error("type 3 all-ones tuple must not be checked")
	}
}

func BenchmarkCRC16T10DIF4K(b *testing.B) {
	buf := make([]byte, 4096)
	b.SetBytes(4096)
	for i := 0; i < b.N; i++ {
		CRC16T10DIF(0, buf)
	}
}
