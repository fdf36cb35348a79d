package pcie

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/bus"
)

// Mapping BARs other than BAR0, for a controller memory buffer (CMB; see the nvme
// package's cmb.go). The driver writes submission queue entries into the mapping with
// MMIO stores and tells the controller where its queues are by bus address: the
// address the controller decodes as its own BAR, not an IOVA. The CMB is programmed
// with the BAR's bus address (CMBMSC.CBA) and a queue's base is that address plus
// its offset, as Linux does (pci_bus_address). The device compares queue addresses
// with the CMB's range before any IOMMU translation, so under VFIO no DMA buffer may
// get an IOVA inside the device's BARs: openVFIO takes them out of the IOVA space.
//
// The bus address is the BAR's start in sysfs `resource`, which is the CPU physical
// address of the BAR; on x86 (and on QEMU's virtual machines) the two are the same.

// barRange is one BAR as sysfs `resource` lists it: start and end inclusive.
type barRange struct {
	start, end uint64
	flags      uint64
}

// ioresourceMem is IORESOURCE_MEM in the flags column of sysfs `resource`.
const ioresourceMem = 0x200

// readBARs parses the device's sysfs `resource` file: one line per resource, "start
// end flags" in hexadecimal; lines 0 to 5 are the BARs.
func readBARs(address string) ([]barRange, error) {
	path := filepath.Join(devicesDir(), address, "resource")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []barRange
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(out) < 6 {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			return nil, fmt.Errorf("%s: line %q is not start end flags", path, sc.Text())
		}
		var v [3]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(strings.TrimPrefix(fields[i], "0x"), 16, 64); err != nil {
				return nil, fmt.Errorf("%s: line %q: %w", path, sc.Text(), err)
			}
		}
		out = append(out, barRange{start: v[0], end: v[1], flags: v[2]})
	}
	return out, sc.Err()
}

// excludeBARs removes the device's memory BARs from the IOVA ranges.
func excludeBARs(ranges []iovaRange, bars []barRange) []iovaRange {
	for _, b := range bars {
		if b.flags&ioresourceMem == 0 || b.end <= b.start {
			continue
		}
		var out []iovaRange
		for _, r := range ranges {
			if b.end < r.start || b.start > r.end {
				out = append(out, r)
				continue
			}
			if b.start > r.start {
				out = append(out, iovaRange{start: r.start, end: b.start - 1})
			}
			if b.end < r.end {
				out = append(out, iovaRange{start: b.end + 1, end: r.end})
			}
		}
		ranges = out
	}
	return ranges
}

// MapBAR implements bus.BARMapper: it maps BAR index (VFIO: the BAR's region; UIO:
// sysfs resourceN) uncached, and gives its bus address. The mapping is undone by
// Close. Write-combining (resourceN_wc) is not used: entries written through it could
// reach the device after the doorbell that announces them.
func (d *Device) MapBAR(index int) (bus.Buffer, error) {
	if index < 0 || index > 5 {
		return bus.Buffer{}, fmt.Errorf("pcie: %s: BAR %d does not exist (0 to 5)", d.ctrl.Address, index)
	}
	bars, err := readBARs(d.ctrl.Address)
	if err != nil {
		return bus.Buffer{}, fmt.Errorf("pcie: %s: reading BAR addresses: %w", d.ctrl.Address, err)
	}
	if index >= len(bars) || bars[index].flags&ioresourceMem == 0 || bars[index].end <= bars[index].start {
		return bus.Buffer{}, fmt.Errorf("pcie: %s: BAR %d is not a memory BAR", d.ctrl.Address, index)
	}
	b := bars[index]
	size := b.end - b.start + 1
	var mem []byte
	switch {
	case d.vfio != nil:
		r, err := regionInfo(d.vfio, uint32(index))
		if err != nil {
			return bus.Buffer{}, fmt.Errorf("pcie: %s: BAR %d: %w", d.ctrl.Address, index, err)
		}
		if r.Flags&vfioRegionInfoFlagMmap == 0 || r.Size < size {
			return bus.Buffer{}, fmt.Errorf("pcie: %s: VFIO says BAR %d cannot be mmap-ed (flags %#x, %d bytes)", d.ctrl.Address, index, r.Flags, r.Size)
		}
		mem, err = unix.Mmap(int(d.vfio.Fd()), int64(r.Offset), int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return bus.Buffer{}, fmt.Errorf("pcie: %s: mapping BAR %d through VFIO: %w", d.ctrl.Address, index, err)
		}
	default:
		path := filepath.Join(devicesDir(), d.ctrl.Address, "resource"+strconv.Itoa(index))
		f, err := os.OpenFile(path, os.O_RDWR|os.O_SYNC, 0)
		if err != nil {
			return bus.Buffer{}, fmt.Errorf("pcie: %s: opening BAR %d (%s): %w%s", d.ctrl.Address, index, filepath.Base(path), err, permissionHint(err))
		}
		mem, err = unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		f.Close() // the mapping keeps the BAR
		if err != nil {
			return bus.Buffer{}, fmt.Errorf("pcie: %s: mapping BAR %d through sysfs: %w", d.ctrl.Address, index, err)
		}
	}
	d.onClose(func() error {
		if err := unix.Munmap(mem); err != nil {
			return fmt.Errorf("pcie: %s: unmapping BAR %d: %w", d.ctrl.Address, index, err)
		}
		return nil
	})
	return bus.Buffer{Bytes: mem, Addr: b.start}, nil
}

var _ bus.BARMapper = (*Device)(nil)
