// Package verify defines the block contents nvmeperf writes in verify mode and checks
// on every read: a 24-byte header (magic, LBA, seed) followed by a splitmix64 stream
// derived from (seed, LBA). The format is a pure function of those two numbers, so an
// image written by any engine (userspace driver, io_uring, simulator) can be checked by
// any other, or by an outside tool; docs/verify-format.md specifies it byte by byte.
//
// Fill, Check, CheckBlocks and CheckBlock allocate nothing and take no locks: they run
// on the I/O path.
package verify

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Magic starts every block written in verify mode (bytes 0..7).
const Magic = "NVMPERF1"

// Block layout (byte offsets within a logical block).
const (
	offMagic   = 0  // Magic, 8 ASCII bytes
	offLBA     = 8  // LBA the block was written for, u64 little-endian
	offSeed    = 16 // run seed, u64 little-endian
	HeaderSize = 24 // the pattern stream starts here
)

// MinLBASize is the smallest block size the format supports.
const MinLBASize = 64

// splitmix64 constants (Steele, Lea, Flood: "Fast splittable pseudorandom number
// generators", as used by Java's SplittableRandom).
const (
	gamma = 0x9E3779B97F4A7C15
	mixC1 = 0xBF58476D1CE4E5B9
	mixC2 = 0x94D049BB133111EB
)

var magicWord = binary.LittleEndian.Uint64([]byte(Magic))

// fmix is splitmix64's output function.
func fmix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * mixC1
	z = (z ^ (z >> 27)) * mixC2
	return z ^ (z >> 31)
}

// streamState is the generator state before the block's first pattern word. Mixing the
// LBA first keeps neighbouring LBAs from sharing shifted copies of one stream.
func streamState(lba, seed uint64) uint64 {
	return fmix(lba+gamma) ^ seed
}

// ValidateLBASize says whether lbaSize can hold verify blocks: at least 64 bytes and
// a multiple of 8. Fill and Check do nothing useful with other sizes, so callers check
// once at setup.
func ValidateLBASize(lbaSize int) error {
	if lbaSize < MinLBASize || lbaSize%8 != 0 {
		return fmt.Errorf("verify: LBA size %d is not supported (want a multiple of 8, at least %d)", lbaSize, MinLBASize)
	}
	return nil
}

func validSize(lbaSize int) bool { return lbaSize >= MinLBASize && lbaSize%8 == 0 }

// Fill writes len(buf)/lbaSize blocks for LBAs firstLBA, firstLBA+1, ...; bytes after
// the last whole block are left alone. With an lbaSize ValidateLBASize rejects, Fill
// writes nothing.
func Fill(buf []byte, lbaSize int, firstLBA, seed uint64) {
	if !validSize(lbaSize) {
		return
	}
	lba := firstLBA
	for off := 0; off+lbaSize <= len(buf); off += lbaSize {
		fillBlock(buf[off:off+lbaSize], lba, seed)
		lba++
	}
}

// FillBlock writes one block (len(block) is the LBA size; see ValidateLBASize).
func FillBlock(block []byte, lba, seed uint64) {
	if validSize(len(block)) {
		fillBlock(block, lba, seed)
	}
}

func fillBlock(b []byte, lba, seed uint64) {
	binary.LittleEndian.PutUint64(b[offMagic:], magicWord)
	binary.LittleEndian.PutUint64(b[offLBA:], lba)
	binary.LittleEndian.PutUint64(b[offSeed:], seed)
	s := streamState(lba, seed)
	words := b[HeaderSize:]
	for len(words) >= 8 {
		s += gamma
		binary.LittleEndian.PutUint64(words, fmix(s))
		words = words[8:]
	}
}

// Kind says how a block failed its check.
type Kind uint8

// Kinds of mismatch, from the header outwards.
const (
	KindData        Kind = iota // header right, pattern bytes wrong: corruption
	KindUnwritten               // block is all zeros: never written in verify mode (or trimmed)
	KindNoHeader                // magic missing: foreign or garbage data
	KindMisdirected             // valid header for another LBA: written to or read from the wrong place
	KindSeed                    // header for this LBA but another seed: stale data from another run
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindUnwritten:
		return "unwritten"
	case KindNoHeader:
		return "no-header"
	case KindMisdirected:
		return "misdirected"
	case KindSeed:
		return "seed"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Mismatch describes the first wrong byte of a block.
type Mismatch struct {
	LBA    uint64 // the LBA that was read
	Offset int    // byte offset of the first wrong byte within the block
	Want   byte
	Got    byte
	Kind   Kind
	Found  uint64 // header LBA (KindMisdirected) or header seed (KindSeed); else 0
}

// String gives "LBA n offset m: want 0x.. got 0x.." plus what the header says.
func (m Mismatch) String() string {
	s := fmt.Sprintf("LBA %d offset %d: want 0x%02x got 0x%02x", m.LBA, m.Offset, m.Want, m.Got)
	switch m.Kind {
	case KindData:
		return s + " (data corrupted)"
	case KindUnwritten:
		return s + " (block is all zeros: never written)"
	case KindNoHeader:
		return s + " (no verify header)"
	case KindMisdirected:
		return s + fmt.Sprintf(" (block holds data for LBA %d)", m.Found)
	case KindSeed:
		return s + fmt.Sprintf(" (written with seed %d)", m.Found)
	}
	return s + " (" + m.Kind.String() + ")"
}

// CheckBlock checks one block (len(block) is the LBA size). ok is false with the first
// wrong byte in m. A block of an unsupported size is reported as KindNoHeader at
// offset 0.
func CheckBlock(block []byte, lba, seed uint64) (ok bool, m Mismatch) {
	if !validSize(len(block)) {
		return false, Mismatch{LBA: lba, Kind: KindNoHeader}
	}
	return checkBlock(block, lba, seed)
}

func checkBlock(b []byte, lba, seed uint64) (bool, Mismatch) {
	if got := binary.LittleEndian.Uint64(b[offMagic:]); got != magicWord {
		kind := KindNoHeader
		if isZero(b) {
			kind = KindUnwritten
		}
		return false, wordMismatch(lba, offMagic, magicWord, got, kind, 0)
	}
	if got := binary.LittleEndian.Uint64(b[offLBA:]); got != lba {
		return false, wordMismatch(lba, offLBA, lba, got, KindMisdirected, got)
	}
	if got := binary.LittleEndian.Uint64(b[offSeed:]); got != seed {
		return false, wordMismatch(lba, offSeed, seed, got, KindSeed, got)
	}
	s := streamState(lba, seed)
	for off := HeaderSize; off+8 <= len(b); off += 8 {
		s += gamma
		want := fmix(s)
		if got := binary.LittleEndian.Uint64(b[off:]); got != want {
			return false, wordMismatch(lba, off, want, got, KindData, 0)
		}
	}
	return true, Mismatch{}
}

// wordMismatch locates the first differing byte of two little-endian words.
func wordMismatch(lba uint64, off int, want, got uint64, kind Kind, found uint64) Mismatch {
	i := bits.TrailingZeros64(want^got) / 8
	return Mismatch{
		LBA:    lba,
		Offset: off + i,
		Want:   byte(want >> (8 * i)),
		Got:    byte(got >> (8 * i)),
		Kind:   kind,
		Found:  found,
	}
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Check checks the len(buf)/lbaSize whole blocks of buf against what Fill writes for
// LBAs firstLBA, firstLBA+1, ... and returns how many blocks differ (all-zero blocks
// count as bad; CheckBlocks tells them apart) and the first difference. With an
// lbaSize ValidateLBASize rejects, bad is -1.
func Check(buf []byte, lbaSize int, firstLBA, seed uint64) (bad int, first Mismatch) {
	unwritten, bad, first := CheckBlocks(buf, lbaSize, firstLBA, seed)
	if bad < 0 {
		return bad, first
	}
	return bad + unwritten, first
}

// CheckBlocks is Check with all-zero blocks counted apart: unwritten blocks are all
// zeros, bad blocks are any other difference, and first is the first block of either
// kind. With an lbaSize ValidateLBASize rejects, bad is -1.
func CheckBlocks(buf []byte, lbaSize int, firstLBA, seed uint64) (unwritten, bad int, first Mismatch) {
	if !validSize(lbaSize) {
		return 0, -1, Mismatch{LBA: firstLBA, Kind: KindNoHeader}
	}
	lba := firstLBA
	seen := false
	for off := 0; off+lbaSize <= len(buf); off += lbaSize {
		ok, m := checkBlock(buf[off:off+lbaSize], lba, seed)
		if !ok {
			if m.Kind == KindUnwritten {
				unwritten++
			} else {
				bad++
			}
			if !seen {
				first, seen = m, true
			}
		}
		lba++
	}
	return unwritten, bad, first
}
