// Package bus holds the two seams between the NVMe driver core and whatever carries it:
// register access (BAR0 on PCIe) and DMA memory (host memory with a device address).
//
// The PCIe transport (VFIO, UIO) and the simulated controller implement both seams, so
// the driver code that runs against the simulator is the code that runs against hardware.
package bus

import (
	"fmt"
	"unsafe"
)

// Registers is access to a controller's register space. Offsets are bytes from the start
// of BAR0 and must be naturally aligned. Implementations are safe for concurrent use.
// Each Read32/Write32 is a single 32-bit load or store, as MMIO requires. Read64 and
// Write64 are two 32-bit accesses, low dword first (Linux's lo_hi_readq/lo_hi_writeq):
// many controllers accept nothing wider than 32 bits. Driver code uses the package
// functions Read64 and Write64, which guarantee that on any Registers.
type Registers interface {
	Read32(off uint32) uint32
	Write32(off uint32, v uint32)
	Read64(off uint32) uint64
	Write64(off uint32, v uint64)
}

// Read64 reads the 64-bit register at off (CAP, ASQ, ACQ, CMBMSC...) as two 32-bit
// reads, low dword then high dword.
func Read64(r Registers, off uint32) uint64 {
	lo := r.Read32(off)
	hi := r.Read32(off + 4)
	return uint64(lo) | uint64(hi)<<32
}

// Write64 writes the 64-bit register at off as two 32-bit writes, low dword then high
// dword.
func Write64(r Registers, off uint32, v uint64) {
	r.Write32(off, uint32(v))
	r.Write32(off+4, uint32(v>>32))
}

// Quiescer is implemented by a transport (its Registers or its Allocator) that can stop
// the device from reaching host memory at all: PCIe clears Bus Master Enable in the
// function's command register. The NVMe driver calls StopDMA on teardown after failure,
// once the controller is disabled (CC.EN=0, CSTS.RDY=0) or has failed to disable, and
// before any DMA memory is freed or unmapped. It must be safe to call more than once.
type Quiescer interface {
	StopDMA() error
}

// AccessObserver sees every access made through an MMIO's Read32/Write32 (and so
// Read64/Write64), in program order, with its width in bytes. The simulator installs
// one on the host's view of its BAR to check the access rules. Pointer accesses through
// Reg32 (the queue pairs' doorbells) are not observed.
type AccessObserver interface {
	ObserveAccess(off uint32, width int, write bool)
}

// MMIO is Registers over mapped memory: a BAR mmap-ed through VFIO or sysfs, or the
// simulated controller's register page. Every access is a plain load or store of the
// register's width through Load32/Store32 (see mmio.go for the ordering they give).
type MMIO struct {
	base unsafe.Pointer
	size uint32
	obs  AccessObserver
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

// SetObserver installs o (nil removes it). Call it before the MMIO is shared.
func (m *MMIO) SetObserver(o AccessObserver) { m.obs = o }

// Size is the length of the register space in bytes.
func (m *MMIO) Size() uint32 { return m.size }

// Reg32 returns a pointer to the 32-bit register at off, for callers that poll or ring
// one register often (doorbells) and want to skip the interface call. Access it only
// with Load32 and Store32, never with sync/atomic.
func (m *MMIO) Reg32(off uint32) *uint32 {
	m.check(off, 4)
	return (*uint32)(unsafe.Add(m.base, off))
}

func (m *MMIO) Read32(off uint32) uint32 {
	p := m.Reg32(off)
	if m.obs != nil {
		m.obs.ObserveAccess(off, 4, false)
	}
	return Load32(p)
}

func (m *MMIO) Write32(off uint32, v uint32) {
	p := m.Reg32(off)
	if m.obs != nil {
		m.obs.ObserveAccess(off, 4, true)
	}
	Store32(p, v)
}

// Read64 reads a 64-bit register low dword first; see Registers.
func (m *MMIO) Read64(off uint32) uint64 {
	m.check(off, 8)
	return Read64(m, off)
}

// Write64 writes a 64-bit register low dword first; see Registers.
func (m *MMIO) Write64(off uint32, v uint64) {
	m.check(off, 8)
	Write64(m, off, v)
}

func (m *MMIO) check(off, width uint32) {
	if off%width != 0 || uint64(off)+uint64(width) > uint64(m.size) {
		// A bad offset is a bug in the driver, never user input.
		panic(fmt.Sprintf("bus: %d-byte register access at %#x outside %#x-byte space or unaligned", width, off, m.size))
	}
}

// PageSize is the unit and alignment of DMA allocation, and the smallest NVMe memory
// page size (CC.MPS = 0). Controllers whose CAP.MPSMIN asks for larger pages get
// allocations aligned by the driver.
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

// BARMapper is implemented by a transport that can map a PCI BAR other than BAR0 into
// the host, for a controller memory buffer (CMB). The returned Buffer's Bytes are the
// BAR's host mapping, to be written only with the MMIO primitives (CopyToMMIO64,
// Store32), and its Addr is the address the controller decodes for the BAR's first
// byte: its PCI bus address, which the host programs as the CMB's controller base
// address and from which queue addresses in the CMB are computed. The transport
// unmaps it when it closes.
type BARMapper interface {
	MapBAR(index int) (Buffer, error)
}
