package pcie

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/bus"
)

// HugePageSize is the size of the pages DMA memory comes from. A 2 MiB hugepage is
// physically contiguous, which UIO needs, and few of them cover a benchmark's buffers.
const HugePageSize = 2 << 20

const pagesPerChunk = HugePageSize / bus.PageSize

// mapper gives memory a device address: an IOMMU mapping under VFIO, the physical
// address under UIO.
type mapper interface {
	mapDMA(mem []byte) (uint64, error)
	unmapDMA(mem []byte, addr uint64) error
	// contiguous reports whether a mapping of several hugepages is contiguous in device
	// address space (true for an IOMMU, false for physical addresses).
	contiguous() bool
}

// chunk is one mmap-ed, device-mapped region: a 2 MiB hugepage carved into 4 KiB pages,
// or a larger dedicated region for one big allocation.
type chunk struct {
	mem       []byte
	addr      uint64
	used      [pagesPerChunk / 64]uint64 // one bit per 4 KiB page; unused when dedicated
	free      int
	dedicated bool
}

// arena is the bus.Allocator for a device: DMA memory off the Go heap, locked, from
// hugepages, with many small allocations sharing one hugepage.
type arena struct {
	mu        sync.Mutex
	m         mapper
	hugepages bool // false only in tests: ordinary pages, which no real device may use
	chunks    []*chunk
	closed    bool
}

func newArena(m mapper) *arena { return &arena{m: m, hugepages: true} }

var _ bus.Allocator = (*arena)(nil)

// Alloc returns zeroed, page-aligned DMA memory of at least size bytes.
func (a *arena) Alloc(size int) (bus.Buffer, error) {
	if size <= 0 {
		return bus.Buffer{}, fmt.Errorf("pcie: DMA allocation size %d must be positive", size)
	}
	pages := (size + bus.PageSize - 1) / bus.PageSize
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return bus.Buffer{}, errors.New("pcie: DMA allocation after the device was closed")
	}
	if pages > pagesPerChunk {
		return a.allocDedicated(pages)
	}
	for _, c := range a.chunks {
		if b, ok := c.carve(pages, size); ok {
			return b, nil
		}
	}
	c, err := a.newChunk(HugePageSize)
	if err != nil {
		return bus.Buffer{}, err
	}
	b, _ := c.carve(pages, size)
	return b, nil
}

func (a *arena) allocDedicated(pages int) (bus.Buffer, error) {
	size := pages * bus.PageSize
	if !a.m.contiguous() {
		return bus.Buffer{}, fmt.Errorf("pcie: DMA allocation of %d bytes is larger than one %d-byte hugepage, the most that is physically contiguous without an IOMMU (use vfio-pci, or smaller I/O)", size, HugePageSize)
	}
	rounded := (size + HugePageSize - 1) / HugePageSize * HugePageSize
	c, err := a.newChunk(rounded)
	if err != nil {
		return bus.Buffer{}, err
	}
	c.dedicated = true
	c.free = 0
	return bus.Buffer{Bytes: c.mem[:size:size], Addr: c.addr}, nil
}

func (a *arena) newChunk(size int) (*chunk, error) {
	mem, err := a.mmap(size)
	if err != nil {
		return nil, err
	}
	addr, err := a.m.mapDMA(mem)
	if err != nil {
		_ = unix.Munmap(mem)
		return nil, err
	}
	c := &chunk{mem: mem, addr: addr, free: pagesPerChunk}
	a.chunks = append(a.chunks, c)
	return c, nil
}

func (a *arena) mmap(size int) ([]byte, error) {
	flags := unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_POPULATE | unix.MAP_LOCKED
	if a.hugepages {
		flags |= unix.MAP_HUGETLB // 2 MiB is the default hugepage size on x86-64 and arm64
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		if a.hugepages {
			return nil, hugepageError(size, err)
		}
		return nil, fmt.Errorf("pcie: mapping %d bytes of DMA memory: %w", size, err)
	}
	return mem, nil
}

// hugepageError explains how to get the hugepages an allocation needs.
func hugepageError(size int, err error) error {
	need := (size + HugePageSize - 1) / HugePageSize
	free := "unknown"
	if b, rerr := os.ReadFile(filepath.Join(procRoot, "meminfo")); rerr == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "HugePages_Free:") {
				free = strings.TrimSpace(strings.TrimPrefix(line, "HugePages_Free:"))
			}
		}
	}
	hint := ""
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EAGAIN) {
		hint = " (locking memory needs root or a higher RLIMIT_MEMLOCK)"
	}
	return fmt.Errorf("pcie: no DMA memory: %d more free 2 MiB hugepage(s) needed, %s free%s; reserve some with `HUGEMEM=2048 %s` or `echo 1024 > /proc/sys/vm/nr_hugepages`: %w",
		need, free, hint, setupScript, err)
}

// carve takes pages contiguous free 4 KiB pages, first fit, and returns the first size
// bytes of them.
func (c *chunk) carve(pages, size int) (bus.Buffer, bool) {
	if c.dedicated || c.free < pages {
		return bus.Buffer{}, false
	}
	run := 0
	for i := 0; i < pagesPerChunk; i++ {
		if c.used[i/64]&(1<<(i%64)) != 0 {
			run = 0
			continue
		}
		run++
		if run == pages {
			start := i - pages + 1
			for p := start; p <= i; p++ {
				c.used[p/64] |= 1 << (p % 64)
			}
			c.free -= pages
			off := start * bus.PageSize
			n := pages * bus.PageSize
			clear(c.mem[off : off+n]) // fresh hugepages are zero, reused pages are not
			mem := c.mem[off : off+size : off+size]
			return bus.Buffer{Bytes: mem, Addr: c.addr + uint64(off)}, true
		}
	}
	return bus.Buffer{}, false
}

// Free returns b, which must be a buffer Alloc returned, unchanged.
func (a *arena) Free(b bus.Buffer) error {
	if len(b.Bytes) == 0 {
		return errors.New("pcie: freeing an empty DMA buffer")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p := uintptr(unsafe.Pointer(&b.Bytes[0]))
	for i, c := range a.chunks {
		base := uintptr(unsafe.Pointer(&c.mem[0]))
		if p < base || p >= base+uintptr(len(c.mem)) {
			continue
		}
		off := int(p - base)
		if b.Addr != c.addr+uint64(off) || off%bus.PageSize != 0 {
			return fmt.Errorf("pcie: freeing DMA buffer at device address %#x that Alloc did not return", b.Addr)
		}
		if c.dedicated {
			err := a.release(c)
			a.chunks = append(a.chunks[:i], a.chunks[i+1:]...)
			return err
		}
		pages := (len(b.Bytes) + bus.PageSize - 1) / bus.PageSize
		start := off / bus.PageSize
		for pg := start; pg < start+pages && pg < pagesPerChunk; pg++ {
			if c.used[pg/64]&(1<<(pg%64)) == 0 {
				return fmt.Errorf("pcie: double free of DMA buffer at device address %#x", b.Addr)
			}
		}
		for pg := start; pg < start+pages; pg++ {
			c.used[pg/64] &^= 1 << (pg % 64)
		}
		c.free += pages
		return nil
	}
	return fmt.Errorf("pcie: freeing DMA buffer at device address %#x that this device did not allocate", b.Addr)
}

func (a *arena) release(c *chunk) error {
	err := a.m.unmapDMA(c.mem, c.addr)
	if uerr := unix.Munmap(c.mem); uerr != nil && err == nil {
		err = fmt.Errorf("pcie: unmapping DMA memory: %w", uerr)
	}
	return err
}

// close unmaps everything; buffers handed out are invalid afterwards.
func (a *arena) close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, c := range a.chunks {
		if err := a.release(c); err != nil {
			errs = append(errs, err)
		}
	}
	a.chunks = nil
	a.closed = true
	return errors.Join(errs...)
}

// inUse is the number of 4 KiB pages handed out, for tests.
func (a *arena) inUse() (pages, chunks int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.chunks {
		if c.dedicated {
			pages += len(c.mem) / bus.PageSize
		} else {
			for _, w := range c.used {
				pages += bits.OnesCount64(w)
			}
		}
	}
	return pages, len(a.chunks)
}

// iovaSpace hands out IOVAs for VFIO mappings from a fixed window: from 1 MiB (so no
// buffer sits at device address 0) up to the MSI window at 0xFEE00000, which Intel and
// AMD IOMMUs reserve. That is far below the 39-bit limit of the smallest IOMMUs, which
// is why IOVAs are not the buffers' virtual addresses (those are 47-bit).
type iovaSpace struct {
	next uint64
	free map[uint64][]uint64 // size -> released IOVAs of that size, reused first
}

const (
	iovaStart = 1 << 20
	iovaLimit = 0xFEE00000
)

func newIOVASpace() *iovaSpace { return &iovaSpace{next: iovaStart, free: map[uint64][]uint64{}} }

func (s *iovaSpace) get(size uint64) (uint64, error) {
	if l := s.free[size]; len(l) > 0 {
		iova := l[len(l)-1]
		s.free[size] = l[:len(l)-1]
		return iova, nil
	}
	// Align to the hugepage size so the IOMMU can use large page mappings.
	iova := (s.next + HugePageSize - 1) &^ (HugePageSize - 1)
	if iova+size > iovaLimit || iova+size < iova {
		return 0, fmt.Errorf("pcie: IOVA window %#x-%#x exhausted mapping %d bytes of DMA memory", iovaStart, iovaLimit, size)
	}
	s.next = iova + size
	return iova, nil
}

func (s *iovaSpace) put(iova, size uint64) { s.free[size] = append(s.free[size], iova) }
