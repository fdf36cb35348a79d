package pcie

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/bus"
)

// HugePageSize is the hugepage size DMA memory prefers: a 2 MiB page is physically
// contiguous, which UIO needs, and few of them cover a benchmark's buffers. Hosts that
// reserve only 1 GiB pages are served from those (see hugepageSizes).
const HugePageSize = 2 << 20

// mapper gives memory a device address: an IOMMU mapping under VFIO, the physical
// address under UIO.
type mapper interface {
	mapDMA(mem []byte) (uint64, error)
	unmapDMA(mem []byte, addr uint64) error
	// contiguous reports whether a mapping of several hugepages is contiguous in device
	// address space (true for an IOMMU, false for physical addresses).
	contiguous() bool
}

// physMapper is a mapper without an IOMMU that can tell the physical address behind a
// virtual one, so allocations larger than a hugepage can be built from physically
// adjacent hugepages.
type physMapper interface {
	mapper
	// physAddr is the physical address of the first byte of page.
	physAddr(page []byte) (uint64, error)
}

// chunk is one mmap-ed, device-mapped region: a hugepage carved into 4 KiB pages, or a
// dedicated region of several hugepages for one big allocation.
type chunk struct {
	mem       []byte
	addr      uint64
	used      []uint64 // one bit per 4 KiB page; nil when dedicated
	pages     int      // 4 KiB pages in mem
	free      int
	dedicated bool
}

// arena is the bus.Allocator for a device: DMA memory off the Go heap, locked, from
// hugepages, with many small allocations sharing one hugepage.
type arena struct {
	mu        sync.Mutex
	m         mapper
	hugepages bool  // false only in tests: ordinary pages, which no real device may use
	sizes     []int // hugepage sizes to try, in order of preference
	chunks    []*chunk
	closed    bool
	stopDMA   func() error // the device's ClearBusMaster; nil in tests
}

func newArena(m mapper) *arena {
	return &arena{m: m, hugepages: true, sizes: hugepageSizes(hugepagePools())}
}

var _ bus.Allocator = (*arena)(nil)

// StopDMA clears bus mastering on the device the memory belongs to. The driver core
// reaches the device only through its Registers and Allocator, so the allocator offers
// it: after disabling the controller and before freeing DMA memory (see
// Device.ClearBusMaster).
func (a *arena) StopDMA() error {
	if a.stopDMA == nil {
		return nil
	}
	return a.stopDMA()
}

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
	for _, c := range a.chunks {
		if b, ok := c.carve(pages, size); ok {
			return b, nil
		}
	}
	// A new hugepage of the first size that fits and that the host can still give.
	var firstErr error
	for _, hp := range a.sizes {
		if pages*bus.PageSize > hp {
			continue
		}
		c, err := a.newChunk(hp, hp)
		if err == nil {
			b, _ := c.carve(pages, size)
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if !errors.Is(err, unix.ENOMEM) {
			return bus.Buffer{}, err
		}
	}
	if firstErr != nil && a.fitsOneHugepage(pages) {
		return bus.Buffer{}, a.noMemory(size, firstErr)
	}
	return a.allocDedicated(size)
}

func (a *arena) fitsOneHugepage(pages int) bool {
	for _, hp := range a.sizes {
		if pages*bus.PageSize <= hp {
			return true
		}
	}
	return false
}

// allocDedicated serves an allocation larger than any hugepage it could carve from:
// with an IOMMU, any hugepages mapped at one IOVA range; without one, hugepages that are
// physically adjacent.
func (a *arena) allocDedicated(size int) (bus.Buffer, error) {
	var firstErr error
	for _, hp := range a.sizes {
		n := (size + hp - 1) / hp
		var c *chunk
		var err error
		if a.m.contiguous() {
			c, err = a.newChunk(n*hp, hp)
		} else {
			c, err = a.contiguousChunk(hp, n)
		}
		if err == nil {
			c.dedicated, c.used, c.free = true, nil, 0
			return bus.Buffer{Bytes: c.mem[:size:size], Addr: c.addr}, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = errors.New("no hugepage sizes")
	}
	if errors.Is(firstErr, unix.ENOMEM) {
		return bus.Buffer{}, a.noMemory(size, firstErr)
	}
	return bus.Buffer{}, firstErr
}

// newChunk maps size bytes of hugepages of size hp and gives them a device address.
func (a *arena) newChunk(size, hp int) (*chunk, error) {
	mem, err := a.mmapAnon(size, hp)
	if err != nil {
		return nil, err
	}
	addr, err := a.m.mapDMA(mem)
	if err != nil {
		_ = munmap(mem)
		return nil, err
	}
	return a.add(mem, addr), nil
}

func (a *arena) add(mem []byte, addr uint64) *chunk {
	pages := len(mem) / bus.PageSize
	c := &chunk{mem: mem, addr: addr, pages: pages, free: pages, used: make([]uint64, (pages+63)/64)}
	a.chunks = append(a.chunks, c)
	return c
}

// hugeFlag encodes hugepage size hp for mmap's MAP_HUGETLB or memfd_create's
// MFD_HUGETLB: log2(size) in the bits above MAP_HUGE_SHIFT (the two share the encoding).
// Naming the size makes the kernel use that pool instead of the default one.
func hugeFlag(hp int) int { return bits.TrailingZeros(uint(hp)) << unix.MAP_HUGE_SHIFT }

// mmapAnon maps size bytes of locked anonymous memory: hugepages of size hp (size is a
// multiple of it) or, in tests, ordinary pages.
func (a *arena) mmapAnon(size, hp int) ([]byte, error) {
	flags := unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_POPULATE | unix.MAP_LOCKED
	if a.hugepages {
		flags |= unix.MAP_HUGETLB | hugeFlag(hp)
	}
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(size), unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		return nil, fmt.Errorf("pcie: mapping %d bytes of DMA memory: %w", size, err)
	}
	return unsafe.Slice((*byte)(p), size), nil
}

func munmap(mem []byte) error {
	if len(mem) == 0 {
		return nil
	}
	return unix.MunmapPtr(unsafe.Pointer(&mem[0]), uintptr(len(mem)))
}

// contiguousChunk builds n*hp bytes from n hugepages of size hp that are adjacent in
// physical memory, mapped in physical order at one virtual range: without an IOMMU the
// device sees physical addresses, and a buffer larger than one hugepage must be
// contiguous there. The hugepages come from a memfd (hugetlbfs without a mount), one at
// a time, until n of them form a run; the rest go back to the pool when the memfd is
// closed. It fails when the pool holds no such run.
func (a *arena) contiguousChunk(hp, n int) (*chunk, error) {
	pm, ok := a.m.(physMapper)
	if !ok {
		return nil, fmt.Errorf("pcie: DMA allocation of %d bytes is larger than one %d-byte hugepage and this transport cannot find physically contiguous hugepages", n*hp, hp)
	}
	flags := unix.MFD_CLOEXEC
	if a.hugepages {
		flags |= unix.MFD_HUGETLB | hugeFlag(hp)
	}
	fd, err := unix.MemfdCreate("nvmeperf-dma", flags)
	if err != nil {
		return nil, fmt.Errorf("pcie: memfd_create for %d-byte hugepages: %w", hp, err)
	}
	defer unix.Close(fd) // the final mapping keeps its pages; the others are freed
	// Look at a bounded number of pages so a large pool is not drained for nothing.
	limit := 8*n + 64
	var seen []filePage
	var run []filePage
	var probeErr error
	for len(seen) < limit {
		off := int64(len(seen)) * int64(hp)
		if err := unix.Ftruncate(fd, off+int64(hp)); err != nil {
			probeErr = err
			break
		}
		p, err := unix.MmapPtr(fd, off, nil, uintptr(hp), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			probeErr = err // the pool is empty: ENOMEM
			break
		}
		phys, err := pm.physAddr(unsafe.Slice((*byte)(p), hp))
		_ = unix.MunmapPtr(p, uintptr(hp))
		if err != nil {
			return nil, err
		}
		seen = append(seen, filePage{off: off, phys: phys})
		if run = physicalRun(seen, n, uint64(hp)); run != nil {
			break
		}
	}
	if run == nil {
		why := fmt.Sprintf("none of the %d looked at form such a run", len(seen))
		if probeErr != nil {
			why = fmt.Sprintf("the %d free ones do not form such a run (next: %v)", len(seen), probeErr)
		}
		return nil, fmt.Errorf("pcie: DMA allocation of %d bytes needs %d physically contiguous %s hugepages (no IOMMU with uio_pci_generic) and %s; use vfio-pci, reserve hugepages soon after boot, or use smaller I/O or queues",
			n*hp, n, sizeName(hp), why)
	}
	return a.mapRun(fd, hp, run)
}

// filePage is one hugepage of a memfd: its offset in the file and physical address.
type filePage struct {
	off  int64
	phys uint64
}

// physicalRun returns n pages of pages whose physical addresses follow each other at
// step hp, in physical order, or nil.
func physicalRun(pages []filePage, n int, hp uint64) []filePage {
	sorted := append([]filePage(nil), pages...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].phys < sorted[j].phys })
	start := 0
	for i := range sorted {
		if i > 0 && sorted[i].phys != sorted[i-1].phys+hp {
			start = i
		}
		if i-start+1 == n {
			return sorted[start : i+1]
		}
	}
	return nil
}

// mapRun maps the file pages of run, in order, at consecutive virtual addresses.
func (a *arena) mapRun(fd, hp int, run []filePage) (*chunk, error) {
	size := len(run) * hp
	rw := unix.PROT_READ | unix.PROT_WRITE
	// Reserve the range by mapping the file (hugetlbfs aligns it), then put each page
	// of the run in place over it.
	base, err := unix.MmapPtr(fd, 0, nil, uintptr(size), unix.PROT_NONE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("pcie: reserving %d bytes of address space: %w", size, err)
	}
	for i, p := range run {
		at := unsafe.Add(base, i*hp)
		if _, err := unix.MmapPtr(fd, p.off, at, uintptr(hp), rw, unix.MAP_SHARED|unix.MAP_FIXED|unix.MAP_POPULATE|unix.MAP_LOCKED); err != nil {
			_ = unix.MunmapPtr(base, uintptr(size))
			return nil, fmt.Errorf("pcie: mapping hugepage %d of a contiguous run: %w", i, err)
		}
	}
	mem := unsafe.Slice((*byte)(base), size)
	// The device address is the physical address of the first page; check that the
	// mapping really is what was found.
	pm := a.m.(physMapper)
	for i := range run {
		got, err := pm.physAddr(mem[i*hp : (i+1)*hp])
		if err != nil || got != run[0].phys+uint64(i*hp) {
			_ = munmap(mem)
			return nil, fmt.Errorf("pcie: hugepage %d of a contiguous run is at physical %#x, want %#x (%v)", i, got, run[0].phys+uint64(i*hp), err)
		}
	}
	addr, err := a.m.mapDMA(mem)
	if err != nil || addr != run[0].phys {
		_ = munmap(mem)
		return nil, fmt.Errorf("pcie: contiguous run mapped at device address %#x, want %#x (%v)", addr, run[0].phys, err)
	}
	return a.add(mem, addr), nil
}

// hugepagePool is one hugepage size the kernel offers
// (/sys/kernel/mm/hugepages/hugepages-<kB>kB).
type hugepagePool struct {
	size        int
	total, free int
}

// hugepagePools lists the host's hugepage sizes, smallest first.
func hugepagePools() []hugepagePool {
	dir := filepath.Join(sysfsRoot, "kernel", "mm", "hugepages")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []hugepagePool
	for _, e := range entries {
		kb, ok := strings.CutPrefix(e.Name(), "hugepages-")
		kb, ok2 := strings.CutSuffix(kb, "kB")
		n, err := strconv.Atoi(kb)
		if !ok || !ok2 || err != nil || n <= 0 || n&(n-1) != 0 {
			continue
		}
		p := hugepagePool{size: n << 10}
		p.total, _ = strconv.Atoi(readTrim(filepath.Join(dir, e.Name(), "nr_hugepages")))
		p.free, _ = strconv.Atoi(readTrim(filepath.Join(dir, e.Name(), "free_hugepages")))
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].size < out[j].size })
	return out
}

// hugepageSizes orders the sizes DMA memory tries: sizes with free pages, smallest first
// (less waste per carved hugepage), then sizes with pages reserved but none free. A host
// with no pages reserved gets 2 MiB, so the error says how to reserve them.
func hugepageSizes(pools []hugepagePool) []int {
	var withFree, reserved []int
	for _, p := range pools {
		switch {
		case p.free > 0:
			withFree = append(withFree, p.size)
		case p.total > 0:
			reserved = append(reserved, p.size)
		}
	}
	out := append(withFree, reserved...)
	if len(out) == 0 {
		out = []int{HugePageSize}
	}
	return out
}

func sizeName(n int) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.Itoa(n>>30) + " GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " bytes"
}

// noMemory explains how to get the hugepages an allocation of size bytes needs.
func (a *arena) noMemory(size int, err error) error {
	if !a.hugepages {
		return err
	}
	return hugepageError(size, hugepagePools(), err)
}

// hugepageError explains how to get the hugepages an allocation needs, naming what each
// hugepage size has free.
func hugepageError(size int, pools []hugepagePool, err error) error {
	need := (size + HugePageSize - 1) / HugePageSize
	var have []string
	for _, p := range pools {
		have = append(have, fmt.Sprintf("%s: %d of %d free", sizeName(p.size), p.free, p.total))
	}
	if len(have) == 0 {
		have = append(have, "this kernel lists no hugepage sizes")
	}
	hint := ""
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EAGAIN) {
		hint = " (locking memory needs root or a higher RLIMIT_MEMLOCK)"
	}
	return fmt.Errorf("pcie: no DMA memory for %d bytes: at least %d more free 2 MiB hugepage(s) (or one 1 GiB) needed; hugepages %s%s; reserve some with `HUGEMEM=2048 %s` or `echo 1024 > /proc/sys/vm/nr_hugepages`: %w",
		size, need, strings.Join(have, ", "), hint, setupScript, err)
}

// carve takes pages contiguous free 4 KiB pages, first fit, and returns the first size
// bytes of them.
func (c *chunk) carve(pages, size int) (bus.Buffer, bool) {
	if c.dedicated || c.free < pages {
		return bus.Buffer{}, false
	}
	run := 0
	for i := 0; i < c.pages; i++ {
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
		for pg := start; pg < start+pages && pg < c.pages; pg++ {
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
	if uerr := munmap(c.mem); uerr != nil && err == nil {
		err = fmt.Errorf("pcie: unmapping DMA memory: %w", uerr)
	}
	return err
}

// close unmaps everything; buffers handed out are invalid afterwards. The device must no
// longer be able to DMA (controller disabled, bus mastering cleared): see Device.Close.
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
