package sim

import (
	"fmt"
	"strconv"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// FormatConfig is the metadata part of every namespace's LBA format. The keys follow
// QEMU's nvme-ns device (ms, mset, pi, pil).
type FormatConfig struct {
	// MetadataSize is the metadata bytes per logical block; 0 = none (ms).
	MetadataSize uint16
	// Extended puts metadata at the end of each block's data in the data buffer (FLBAS
	// bit 4, mset=1); otherwise it travels in a separate buffer named by MPTR (mset=0).
	Extended bool
	// PIType is the end-to-end protection information type, 0 (none) to 3 (pi).
	PIType uint8
	// PIFirst puts the 8-byte PI in the first bytes of metadata (pil=1); by default it
	// is the last 8 bytes.
	PIFirst bool
}

// maxMetadataSize bounds ms; real formats use 8 to 128.
const maxMetadataSize = 256

// setFormat handles the metadata format keys; ok is false for other keys.
func (cfg *Config) setFormat(key, val string) (ok bool, err error) {
	f := &cfg.Format
	switch key {
	case "ms":
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 || n > maxMetadataSize {
			return true, badValue(key, val, fmt.Sprintf("metadata bytes per block, 0 to %d", maxMetadataSize))
		}
		f.MetadataSize = uint16(n)
	case "mset":
		switch val {
		case "0":
			f.Extended = false
		case "1":
			f.Extended = true
		default:
			return true, badValue(key, val, "0 (separate metadata buffer) or 1 (extended LBA: metadata after each block's data)")
		}
	case "pi":
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 || n > 3 {
			return true, badValue(key, val, "protection information type 0 (none), 1, 2 or 3")
		}
		f.PIType = uint8(n)
	case "pil":
		switch val {
		case "0":
			f.PIFirst = false
		case "1":
			f.PIFirst = true
		default:
			return true, badValue(key, val, "0 (PI in the last 8 bytes of metadata) or 1 (the first 8 bytes)")
		}
	default:
		return false, nil
	}
	return true, nil
}

// validate checks the format, naming the first bad field.
func (f *FormatConfig) validate() error {
	switch {
	case f.MetadataSize > maxMetadataSize:
		return fmt.Errorf("sim: Format.MetadataSize %d is not accepted (want 0 to %d)", f.MetadataSize, maxMetadataSize)
	case f.PIType > 3:
		return fmt.Errorf("sim: Format.PIType %d is not accepted (want 0 to 3)", f.PIType)
	case f.PIType != 0 && f.MetadataSize < spec.PISize:
		return fmt.Errorf("sim: Format.PIType %d needs at least %d bytes of metadata, Format.MetadataSize is %d (set ms)", f.PIType, spec.PISize, f.MetadataSize)
	}
	return nil
}

// identifyFormat reports the namespace's format in Identify Namespace: LBA format 0
// with its metadata size, FLBAS bit 4 for extended LBAs, DPS, and what it supports (MC,
// DPC).
func (ns *namespace) identifyFormat(id *spec.IdentifyNamespace) {
	id.LBAF[0] = spec.MakeLBAFormat(ns.ms, uint8(ns.lbaShift), 0)
	id.FLBAS = 0
	if ns.ext {
		id.FLBAS |= 1 << 4
	}
	if ns.ms > 0 {
		id.MC = spec.MCExtended | spec.MCSeparate
	}
	if ns.ms >= spec.PISize {
		id.DPC = spec.DPCType1 | spec.DPCType2 | spec.DPCType3 | spec.DPCFirst | spec.DPCLast
	}
	id.DPS = ns.pi
	if ns.pi != 0 && ns.piFirst {
		id.DPS |= spec.DPSFirst
	}
}

// piOffset is where the PI tuple sits in a block's metadata.
func (ns *namespace) piOffset() int {
	if ns.piFirst {
		return 0
	}
	return int(ns.ms) - spec.PISize
}

// guard is the CRC over a block's data and, when PI is the last 8 bytes of metadata,
// the metadata bytes before it.
func (ns *namespace) guard(data, md []byte) uint16 {
	crc := spec.CRC16T10DIF(0, data)
	if !ns.piFirst {
		crc = spec.CRC16T10DIF(crc, md[:int(ns.ms)-spec.PISize])
	}
	return crc
}

// expectedPI is the tuple block i of cmd should carry: the guard of its contents, the
// command's application tag (CDW15 LBAT) and, for types 1 and 2, the initial reference
// tag (CDW14 ILBRT) plus i.
func (ns *namespace) expectedPI(cmd *spec.Command, i uint64, data, md []byte) spec.PI {
	pi := spec.PI{Guard: ns.guard(data, md), AppTag: uint16(cmd.CDW15), RefTag: cmd.CDW14}
	if ns.pi != spec.PIType3 {
		pi.RefTag += uint32(i)
	}
	return pi
}

// segCursor walks the host memory segments of a PRP-described transfer.
type segCursor struct {
	segs [][]byte
	i    int
	off  int
}

// out copies from host memory into dst.
func (s *segCursor) out(dst []byte) {
	for len(dst) > 0 {
		n := copy(dst, s.segs[s.i][s.off:])
		dst = dst[n:]
		s.advance(n)
	}
}

// in copies src into host memory.
func (s *segCursor) in(src []byte) {
	for len(src) > 0 {
		n := copy(s.segs[s.i][s.off:], src)
		src = src[n:]
		s.advance(n)
	}
}

// fill writes n bytes of b into host memory.
func (s *segCursor) fill(b byte, n int) {
	for n > 0 {
		seg := s.segs[s.i][s.off:]
		m := min(n, len(seg))
		for k := range seg[:m] {
			seg[k] = b
		}
		n -= m
		s.advance(m)
	}
}

func (s *segCursor) skip(n int) {
	for n > 0 {
		m := min(n, len(s.segs[s.i])-s.off)
		n -= m
		s.advance(m)
	}
}

func (s *segCursor) advance(n int) {
	s.off += n
	if s.off == len(s.segs[s.i]) && s.i < len(s.segs)-1 {
		s.i++
		s.off = 0
	}
}

// readWriteMeta is Read and Write on a namespace with metadata. Metadata travels
// interleaved after each block's data (extended LBA) or in the separate buffer at MPTR.
// With protection information, PRACT=1 makes the controller insert the PI on writes
// and strip it on reads (then, with 8 bytes of metadata, only data moves), and the
// PRCHK bits select which PI fields it checks: on writes the PI the host sent (PRACT=0),
// on reads the PI stored. A failed check completes the command with the end-to-end
// status of the field (SCT 2h: 82h guard, 83h application tag, 84h reference tag);
// the blocks before the failing one may already be written.
func (c *Controller) readWriteMeta(sq *submissionQueue, ns *namespace, cmd *spec.Command, write bool) (spec.Status, int64) {
	slba, nlb := ioRange(cmd)
	if !ns.inRange(slba, nlb) {
		return generic(spec.SCLBAOutOfRange), 0
	}
	var pract bool
	var prchk uint8
	if ns.pi != 0 {
		pract = cmd.CDW12&spec.RWPRACT != 0
		prchk = uint8(cmd.CDW12 & spec.RWPRCHKMask >> spec.RWPRCHKShift)
	}
	mdMoves := !(pract && ns.ms == spec.PISize)
	lbaSize := uint64(1) << ns.lbaShift
	ms := uint64(ns.ms)
	wire := lbaSize
	if ns.ext && mdMoves {
		wire += ms
	}
	n := nlb * wire
	if n > c.cfg.maxTransfer() {
		return generic(spec.SCInvalidField), 0
	}
	if st := c.walkPRPTo(&sq.segs, &sq.dmaCache, cmd, n); st != spec.StatusSuccess {
		return st, 0
	}
	var mdHost []byte
	if !ns.ext && mdMoves {
		if cmd.MPTR%4 != 0 {
			return generic(spec.SCInvalidField), 0 // MPTR must be dword aligned
		}
		if mdHost = c.dma.translate(cmd.MPTR, nlb*ms); mdHost == nil {
			return generic(spec.SCDataTransferError), 0
		}
	}
	cur := segCursor{segs: sq.segs}
	data := sq.blk[:lbaSize]
	md := sq.blk[lbaSize : lbaSize+ms]
	pio := ns.piOffset()
	appMask := uint16(cmd.CDW15 >> 16)
	for i := uint64(0); i < nlb; i++ {
		blk := slba + i
		if write {
			cur.out(data)
			switch {
			case !mdMoves:
				clear(md)
			case ns.ext:
				cur.out(md)
			default:
				copy(md, mdHost[i*ms:])
			}
			if ns.pi != 0 {
				want := ns.expectedPI(cmd, i, data, md)
				if pract {
					spec.PutPI(md[pio:], want)
				} else if f := spec.CheckPI(ns.pi, prchk, appMask, spec.GetPI(md[pio:]), want); f != 0 {
					return f.Status(), 0
				}
			}
			if ns.data != nil {
				copy(ns.data[blk<<ns.lbaShift:], data)
				ns.putMeta(blk, md)
			}
			continue
		}
		if ns.data == nil {
			// Discard mode moves no data, but metadata reads as all ones so that PI
			// checks are escaped rather than failing on stale buffers.
			cur.skip(int(lbaSize))
			switch {
			case !mdMoves:
			case ns.ext:
				cur.fill(0xFF, int(ms))
			default:
				mdHost := mdHost[i*ms : (i+1)*ms]
				for k := range mdHost {
					mdHost[k] = 0xFF
				}
			}
			continue
		}
		stored := ns.data[blk<<ns.lbaShift : (blk+1)<<ns.lbaShift]
		ns.getMeta(blk, md)
		if ns.pi != 0 && prchk != 0 {
			if f := spec.CheckPI(ns.pi, prchk, appMask, spec.GetPI(md[pio:]), ns.expectedPI(cmd, i, stored, md)); f != 0 {
				return f.Status(), 0
			}
		}
		cur.in(stored)
		switch {
		case !mdMoves:
		case ns.ext:
			cur.in(md)
		default:
			copy(mdHost[i*ms:], md)
		}
	}
	off := slba << ns.lbaShift
	if write && ns.data != nil {
		ns.markWritten(off, nlb<<ns.lbaShift)
	}
	return c.account(sq, write, off, nlb<<ns.lbaShift)
}
