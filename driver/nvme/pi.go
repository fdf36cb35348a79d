package nvme

import (
	"fmt"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Host side of end-to-end protection information: with PRACT=0 nvmeperf writes the PI
// of every block itself and checks the PI of every block it reads.

// piAppTag is the application tag nvmeperf writes and expects ("np"); the mask in
// CDW15 makes the controller compare all 16 bits.
const piAppTag = 0x6E70

// PIError is a protection information check nvmeperf itself failed on data read back
// (the controller may check the same fields first and fail the command instead).
type PIError struct {
	LBA       uint64
	Field     spec.PIField
	Want, Got uint32
}

func (e *PIError) Error() string {
	return fmt.Sprintf("nvme: LBA %d: end-to-end %s check failed (checked by nvmeperf): want %#x, got %#x", e.LBA, e.Field, e.Want, e.Got)
}

// piLayout is what the host needs to generate and check PI for one namespace.
type piLayout struct {
	typ     uint8
	first   bool
	ms      int
	checks  uint8 // PRCHK bits, shifted down (bit 2 guard, 1 app tag, 0 ref tag)
	lbaSize int
}

// offset is where the tuple sits in a block's metadata.
func (l *piLayout) offset() int {
	if l.first {
		return 0
	}
	return l.ms - spec.PISize
}

// want is the tuple block lba with data and metadata md should carry.
func (l *piLayout) want(lba uint64, data, md []byte) spec.PI {
	crc := spec.CRC16T10DIF(0, data)
	if !l.first {
		crc = spec.CRC16T10DIF(crc, md[:l.ms-spec.PISize])
	}
	return spec.PI{Guard: crc, AppTag: piAppTag, RefTag: uint32(lba)}
}

// generate writes the tuple of block lba into md.
func (l *piLayout) generate(lba uint64, data, md []byte) {
	spec.PutPI(md[l.offset():], l.want(lba, data, md))
}

// check compares the tuple in md with what block lba should carry.
func (l *piLayout) check(lba uint64, data, md []byte) error {
	got := spec.GetPI(md[l.offset():])
	want := l.want(lba, data, md)
	switch spec.CheckPI(l.typ, l.checks, 0xFFFF, got, want) {
	case spec.PIGuard:
		return &PIError{LBA: lba, Field: spec.PIGuard, Want: uint32(want.Guard), Got: uint32(got.Guard)}
	case spec.PIAppTag:
		return &PIError{LBA: lba, Field: spec.PIAppTag, Want: uint32(want.AppTag), Got: uint32(got.AppTag)}
	case spec.PIRefTag:
		return &PIError{LBA: lba, Field: spec.PIRefTag, Want: want.RefTag, Got: got.RefTag}
	}
	return nil
}
