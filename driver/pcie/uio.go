package pcie

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// uioMapper gives DMA memory its physical address from /proc/self/pagemap. The kernel
// does not move locked hugepages, so the address stays valid while mapped.
type uioMapper struct{}

func (uioMapper) contiguous() bool { return false }

// pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	pagemapPresent = 1 << 63
	pagemapPFNMask = 1<<55 - 1
)

func (uioMapper) mapDMA(mem []byte) (uint64, error) {
	return physAddr(filepath.Join(procRoot, "self", "pagemap"), uintptr(unsafe.Pointer(&mem[0])))
}

func (uioMapper) unmapDMA([]byte, uint64) error { return nil }

func (uioMapper) physAddr(page []byte) (uint64, error) {
	return physAddr(filepath.Join(procRoot, "self", "pagemap"), uintptr(unsafe.Pointer(&page[0])))
}

var _ physMapper = uioMapper{}

// physAddr reads the physical address of virtual address va from a pagemap file.
func physAddr(pagemap string, va uintptr) (uint64, error) {
	f, err := os.Open(pagemap)
	if err != nil {
		return 0, fmt.Errorf("pcie: opening %s: %w%s", pagemap, err, permissionHint(err))
	}
	defer f.Close()
	page := uintptr(os.Getpagesize())
	var buf [8]byte
	if _, err := f.ReadAt(buf[:], int64(va/page*8)); err != nil {
		return 0, fmt.Errorf("pcie: reading %s for address %#x: %w", pagemap, va, err)
	}
	e := binary.LittleEndian.Uint64(buf[:])
	if e&pagemapPresent == 0 {
		return 0, fmt.Errorf("pcie: DMA page at %#x is not present in memory", va)
	}
	pfn := e & pagemapPFNMask
	if pfn == 0 {
		return 0, errors.New("pcie: /proc/self/pagemap shows physical frame 0: reading physical addresses needs root (CAP_SYS_ADMIN)")
	}
	return pfn*uint64(page) + uint64(va%page), nil
}

// newUIOArena is the DMA allocator of a UIO device; tests replace it with one over
// ordinary pages.
var newUIOArena = func() *arena { return newArena(uioMapper{}) }

func openUIO(c Controller) (*Device, error) {
	d := &Device{ctrl: c}
	dir := filepath.Join(devicesDir(), c.Address)
	res, err := os.OpenFile(filepath.Join(dir, "resource0"), os.O_RDWR|os.O_SYNC, 0)
	if err != nil {
		return nil, fmt.Errorf("pcie: %s: opening BAR0 (resource0): %w%s", c.Address, err, permissionHint(err))
	}
	d.onClose(res.Close)
	// UIO has no owner like a VFIO group: an advisory lock keeps two nvmeperf processes
	// (or two Opens) from driving one controller.
	if err := unix.Flock(int(res.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return d.fail(fmt.Errorf("pcie: %s is in use by another nvmeperf (lock on resource0: %w)", c.Address, err))
	}
	st, err := res.Stat()
	if err != nil {
		return d.fail(fmt.Errorf("pcie: %s: %w", c.Address, err))
	}
	cfg, err := os.OpenFile(filepath.Join(dir, "config"), os.O_RDWR, 0)
	if err != nil {
		return d.fail(fmt.Errorf("pcie: %s: opening config space: %w%s", c.Address, err, permissionHint(err)))
	}
	d.onClose(cfg.Close)
	if err := d.enableBusMaster(cfg, 0); err != nil {
		return d.fail(err)
	}
	if err := d.mapBAR(int(res.Fd()), 0, int(st.Size()), "sysfs resource0"); err != nil {
		return d.fail(err)
	}
	d.dma = newUIOArena()
	d.dma.stopDMA = d.ClearBusMaster
	d.onClose(d.dma.close)
	// Fail now, not at the first queue, when physical addresses cannot be read.
	b, err := d.dma.Alloc(1)
	if err != nil {
		return d.fail(fmt.Errorf("pcie: %s: %w", c.Address, err))
	}
	_ = d.dma.Free(b)
	return d, nil
}
