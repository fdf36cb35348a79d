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
	// Stats.StoreBytes and is touched only by the device thread.
	resident []uint64
	stored   atomic.Int64 // pages with a resident bit set; read by Stats
}

func newNamespace(id uint32, cfg *Config, keep bool) (*namespace, error) {
	ns := &namespace{
		id:       id,
		nlbas:    cfg.NamespaceSize / uint64(cfg.LBASize),
		lbaShift: uint(bits.TrailingZeros32(cfg.LBASize)),
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
	return ns, nil
}

func (ns *namespace) close() error {
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
		w, b := p/64, uint64(1)<<(p%64)
		if ns.resident[w]&b == 0 {
			ns.resident[w] |= b
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
		w, b := p/64, uint64(1)<<(p%64)
		if ns.resident[w]&b != 0 {
			ns.resident[w] &^= b
			ns.stored.Add(-1)
		}
	}
	return nil
}
