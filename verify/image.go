package verify

import (
	"errors"
	"fmt"
	"io"
)

// ImageReport is what CheckImage found.
type ImageReport struct {
	Blocks     uint64     // whole blocks in the image
	Verified   uint64     // blocks whose header and pattern are right for their LBA
	Unwritten  uint64     // all-zero blocks
	Mismatched uint64     // every other block
	First      []Mismatch // the first mismatched blocks, up to maxReport, in LBA order
}

// imageChunk is how much CheckImage reads at a time.
const imageChunk = 1 << 20

// CheckImage checks the first size bytes of r (a device or image file whose block i
// is LBA i) against seed. All-zero blocks count as Unwritten; blocks with the right
// header and pattern as Verified; anything else as Mismatched, the first maxReport of
// which are listed (maxReport <= 0 lists none). size must be a whole number of blocks.
func CheckImage(r io.ReaderAt, size int64, lbaSize int, seed uint64, maxReport int) (ImageReport, error) {
	var rep ImageReport
	if err := ValidateLBASize(lbaSize); err != nil {
		return rep, err
	}
	if size < 0 || size%int64(lbaSize) != 0 {
		return rep, fmt.Errorf("verify: image size %d is not a whole number of %d-byte blocks", size, lbaSize)
	}
	rep.Blocks = uint64(size / int64(lbaSize))
	chunk := imageChunk - imageChunk%lbaSize
	if chunk < lbaSize {
		chunk = lbaSize
	}
	buf := make([]byte, chunk)
	for off := int64(0); off < size; {
		n := chunk
		if rest := size - off; rest < int64(n) {
			n = int(rest)
		}
		got, err := r.ReadAt(buf[:n], off)
		if got < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return rep, fmt.Errorf("verify: reading image at byte %d: %w", off+int64(got), err)
		}
		lba := uint64(off / int64(lbaSize))
		for b := 0; b < n; b += lbaSize {
			ok, m := checkBlock(buf[b:b+lbaSize], lba, seed)
			switch {
			case ok:
				rep.Verified++
			case m.Kind == KindUnwritten:
				rep.Unwritten++
			default:
				rep.Mismatched++
				if len(rep.First) < maxReport {
					rep.First = append(rep.First, m)
				}
			}
			lba++
		}
		off += int64(n)
	}
	return rep, nil
}
