package sim

import (
	"fmt"
	"math/bits"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// storePage is the unit the store tracks residency in (the host page size on every
// platform nvmeperf builds for).
const storePage = 4096

// namespace is one simulated namespace and its data.
//
// Store policy: when data is kept, the namespace is one anonymous private mapping of its
// full size made with MAP_NORESERVE. The kernel backs a page only when it is first
// written, pages never written read as zeroes, and deallocation hands whole pages back
// with MADV_DONTNEED, so memory use is bounded by what was written and never exceeds the
// namespace size, which Config.Validate keeps within MemLimit. No Go allocation happens
// on the I/O path. When data is discarded, data is nil.
type namespace struct {
	id       uint32
	nlbas    uint64
	lbaShift uint
	data     []byte
	// resident has one bit per storePage of data that holds written bytes; it backs
	// Stats.StoreBytes. Its words are read and changed atomically: in inline mode
	// several workers write one namespace.
	resident []uint64
	stored   atomic.Int64 // pages with a resident bit set; read by Stats

	// Metadata format (Config.Format). meta holds ms bytes per block, stored inverted
	// so that never-written (and deallocated) blocks read as all ones, the PI value
	// that escapes every check, as QEMU's model does for unwritten blocks.
	ms      uint16
	ext     bool
	pi      uint8
	piFirst bool
	meta    []byte
}

func newNamespace(id uint32, cfg *Config, keep bool) (*namespace, error) {
	ns := &namespace{
		id:       id,
		nlbas:    cfg.NamespaceSize / uint64(cfg.LBASize),
		lbaShift: uint(bits.TrailingZeros32(cfg.LBASize)),
		ms:       cfg.Format.MetadataSize,
		ext:      cfg.Format.Extended && cfg.Format.MetadataSize > 0,
		pi:       cfg.Format.PIType,
		piFirst:  cfg.Format.PIFirst,
	}
	if !keep {
		return ns, nil
	}
	size := int(cfg.NamespaceSize)
	if uint64(size) != cfg.NamespaceSize {
		return nil, fmt.Errorf("sim: namespace %d: size %d does not fit the address space", id, cfg.NamespaceSize)
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("sim: namespace %d: mapping %d bytes of store: %w", id, size, err)
	}
	ns.data = mem
	ns.resident = make([]uint64, (uint64(size)/storePage+63)/64)
	if ns.ms > 0 {
		msize := int(ns.nlbas) * int(ns.ms)
		if ns.meta, err = unix.Mmap(-1, 0, msize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE); err != nil {
			_ = unix.Munmap(mem)
			ns.data = nil
			return nil, fmt.Errorf("sim: namespace %d: mapping %d bytes of metadata store: %w", id, msize, err)
		}
	}
	return ns, nil
}

// putMeta stores block lba's metadata (inverted, see namespace.meta).
func (ns *namespace) putMeta(lba uint64, md []byte) {
	dst := ns.meta[lba*uint64(ns.ms):]
	for i, b := range md {
		dst[i] = ^b
	}
}

// getMeta loads block lba's metadata into md.
func (ns *namespace) getMeta(lba uint64, md []byte) {
	src := ns.meta[lba*uint64(ns.ms):]
	for i := range md {
		md[i] = ^src[i]
	}
}

func (ns *namespace) close() error {
	if ns.meta != nil {
		if err := unix.Munmap(ns.meta); err != nil {
			return fmt.Errorf("sim: namespace %d: unmapping metadata store: %w", ns.id, err)
		}
		ns.meta = nil
	}
	if ns.data == nil {
		return nil
	}
	err := unix.Munmap(ns.data)
	ns.data = nil
	if err != nil {
		return fmt.Errorf("sim: namespace %d: unmapping store: %w", ns.id, err)
	}
	return nil
}

// inRange reports whether [slba, slba+nlb) lies inside the namespace.
func (ns *namespace) inRange(slba, nlb uint64) bool {
	return slba < ns.nlbas && nlb <= ns.nlbas-slba
}

// markWritten sets the resident bits of bytes [off, off+n).
func (ns *namespace) markWritten(off, n uint64) {
	for p := off / storePage; p <= (off+n-1)/storePage; p++ {
		w, b := &ns.resident[p/64], uint64(1)<<(p%64)
		// The plain-load check keeps the locked OR off the path of rewrites.
		if atomic.LoadUint64(w)&b == 0 && atomic.OrUint64(w, b)&b == 0 {
			ns.stored.Add(1)
		}
	}
}

// zero makes bytes [off, off+n) read as zeroes, giving whole pages back to the kernel.
func (ns *namespace) zero(off, n uint64) error {
	if ns.data == nil {
		return nil
	}
	end := off + n
	if ns.meta != nil {
		// Zeroed metadata reads back as all ones: PI checks are escaped.
		clear(ns.meta[(off>>ns.lbaShift)*uint64(ns.ms) : (end>>ns.lbaShift)*uint64(ns.ms)])
	}
	first := (off + storePage - 1) &^ (storePage - 1)
	last := end &^ (storePage - 1)
	if first >= last { // no whole page inside
		clear(ns.data[off:end])
		return nil
	}
	clear(ns.data[off:first])
	clear(ns.data[last:end])
	if err := unix.Madvise(ns.data[first:last], unix.MADV_DONTNEED); err != nil {
		clear(ns.data[first:last])
		return fmt.Errorf("sim: namespace %d: madvise: %w", ns.id, err)
	}
	for p := first / storePage; p < last/storePage; p++ {
		w, b := &ns.resident[p/64], uint64(1)<<(p%64)
		if atomic.LoadUint64(w)&b != 0 && atomic.AndUint64(w, ^b)&b != 0 {
			ns.stored.Add(-1)
		}
	}
	return nil
}
