// Package bus holds the two seams between the NVMe driver core and whatever carries it:
// register access (BAR0 on PCIe) and DMA memory (host memory with a device address).
//
// The PCIe transport (VFIO, UIO) and the simulated controller implement both seams, so
// the driver code that runs against the simulator is the code that runs against hardware.
package bus

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Registers is access to a controller's register space. Offsets are bytes from the start
// of BAR0 and must be naturally aligned. Implementations are safe for concurrent use; each
// access is a single load or store, as MMIO requires.
type Registers interface {
	Read32(off uint32) uint32
	Write32(off uint32, v uint32)
	Read64(off uint32) uint64
	Write64(off uint32, v uint64)
}

// MMIO is Registers over mapped memory: a BAR mmap-ed through VFIO or sysfs, or the
// simulated controller's register page. Every access goes through sync/atomic so that
// the compiler neither reorders nor splits it, and the other side (device or simulator)
// sees stores in program order.
type MMIO struct {
	base unsafe.Pointer
	size uint32
}

// NewMMIO wraps mem, which must stay mapped for the life of the MMIO.
func NewMMIO(mem []byte) (*MMIO, error) {
	if len(mem) == 0 {
		return nil, fmt.Errorf("bus: register space is empty")
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return nil, fmt.Errorf("bus: register space at %p is not 8-byte aligned", &mem[0])
	}
	if uint64(len(mem)) > 1<<32-1 {
		return nil, fmt.Errorf("bus: register space of %d bytes is larger than 4 GiB", len(mem))
	}
	return &MMIO{base: unsafe.Pointer(&mem[0]), size: uint32(len(mem))}, nil
}

// Size is the length of the register space in bytes.
func (m *MMIO) Size() uint32 { return m.size }

// Reg32 returns a pointer to the 32-bit register at off, for callers that poll or ring
// one register often (doorbells) and want to skip the interface call. Use it only with
// sync/atomic.
func (m *MMIO) Reg32(off uint32) *uint32 {
	m.check(off, 4)
	return (*uint32)(unsafe.Add(m.base, off))
}

func (m *MMIO) Read32(off uint32) uint32 { return atomic.LoadUint32(m.Reg32(off)) }

func (m *MMIO) Write32(off uint32, v uint32) { atomic.StoreUint32(m.Reg32(off), v) }

func (m *MMIO) Read64(off uint32) uint64 {
	m.check(off, 8)
	return atomic.LoadUint64((*uint64)(unsafe.Add(m.base, off)))
}

func (m *MMIO) Write64(off uint32, v uint64) {
	m.check(off, 8)
	atomic.StoreUint64((*uint64)(unsafe.Add(m.base, off)), v)
}

func (m *MMIO) check(off, width uint32) {
	if off%width != 0 || uint64(off)+uint64(width) > uint64(m.size) {
		// A bad offset is a bug in the driver, never user input.
		panic(fmt.Sprintf("bus: %d-byte register access at %#x outside %#x-byte space or unaligned", width, off, m.size))
	}
}

// PageSize is the unit of DMA allocation and the NVMe memory page size nvmeperf uses
// (CC.MPS = 0).
const PageSize = 4096

// Buffer is DMA memory: Bytes is the host's view, Addr the address the device uses for
// its first byte (an IOVA under VFIO, a physical address under UIO, a simulated bus
// address for the simulator). The memory is off the Go heap and does not move.
type Buffer struct {
	Bytes []byte
	Addr  uint64
}

// Slice returns the part of b from off for n bytes, with its device address.
func (b Buffer) Slice(off, n int) Buffer {
	return Buffer{Bytes: b.Bytes[off : off+n : off+n], Addr: b.Addr + uint64(off)}
}

// Len is the buffer length in bytes.
func (b Buffer) Len() int { return len(b.Bytes) }

// Allocator hands out DMA memory. Alloc returns zeroed memory of at least size bytes,
// aligned to PageSize in both host and device address; Free returns it. Allocators are
// safe for concurrent use, but the I/O path never calls them: queues allocate up front.
type Allocator interface {
	Alloc(size int) (Buffer, error)
	Free(b Buffer) error
}
