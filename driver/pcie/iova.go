package pcie

import (
	"fmt"
	"math/bits"
	"strings"
)

// iovaRange is a span of I/O virtual addresses, end inclusive, as VFIO reports them.
type iovaRange struct{ start, end uint64 }

func (r iovaRange) String() string { return fmt.Sprintf("%#x-%#x", r.start, r.end) }

// iovaFloor keeps every buffer above device address 0..1 MiB even where the IOMMU
// allows it: a PRP or pointer left zero by a bug must fault, not hit a buffer.
const iovaFloor = 1 << 20

// legacyIOVAWindow is used when the kernel does not report IOVA ranges
// (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE came with Linux 5.4): 1 MiB up to the x86 MSI
// window at 0xFEE00000, which Intel and AMD IOMMUs reserve, and far below the 39-bit
// limit of the smallest IOMMUs.
var legacyIOVAWindow = []iovaRange{{start: iovaFloor, end: 0xFEE00000 - 1}}

// iovaSpace hands out IOVAs for VFIO mappings from the ranges the IOMMU allows. IOVAs
// are not the buffers' virtual addresses: those are 47 bits wide and may lie outside the
// ranges.
type iovaSpace struct {
	ranges []iovaRange
	cur    int    // range next is in
	next   uint64 // first never-used IOVA
	free   map[uint64][]uint64
}

// newIOVASpace uses ranges (sorted or not), cut below iovaFloor.
func newIOVASpace(ranges []iovaRange) (*iovaSpace, error) {
	var usable []iovaRange
	for _, r := range ranges {
		if r.end < r.start || r.end < iovaFloor {
			continue
		}
		r.start = max(r.start, iovaFloor)
		usable = append(usable, r)
	}
	if len(usable) == 0 {
		return nil, fmt.Errorf("pcie: the IOMMU allows no IOVAs at or above %#x (ranges %s)", iovaFloor, rangesString(ranges))
	}
	for i := 1; i < len(usable); i++ { // insertion sort: a handful of ranges
		for j := i; j > 0 && usable[j].start < usable[j-1].start; j-- {
			usable[j], usable[j-1] = usable[j-1], usable[j]
		}
	}
	return &iovaSpace{ranges: usable, next: usable[0].start, free: map[uint64][]uint64{}}, nil
}

func rangesString(rs []iovaRange) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// iovaAlign is the alignment a mapping of size bytes gets: its largest power-of-two
// divisor, at most 1 GiB, so the IOMMU can use its large pages for hugepage memory.
func iovaAlign(size uint64) uint64 {
	a := uint64(1) << bits.TrailingZeros64(size)
	return min(a, 1<<30)
}

func (s *iovaSpace) get(size uint64) (uint64, error) {
	if size == 0 {
		return 0, fmt.Errorf("pcie: IOVA for an empty mapping")
	}
	if l := s.free[size]; len(l) > 0 {
		iova := l[len(l)-1]
		s.free[size] = l[:len(l)-1]
		return iova, nil
	}
	align := iovaAlign(size)
	for s.cur < len(s.ranges) {
		r := s.ranges[s.cur]
		iova := (max(s.next, r.start) + align - 1) &^ (align - 1)
		last := iova + size - 1
		if iova >= r.start && last >= iova && last <= r.end {
			s.next = last + 1
			return iova, nil
		}
		s.cur++
	}
	return 0, fmt.Errorf("pcie: IOVA ranges %s exhausted mapping %d bytes of DMA memory", rangesString(s.ranges), size)
}

func (s *iovaSpace) put(iova, size uint64) { s.free[size] = append(s.free[size], iova) }
