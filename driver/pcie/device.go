package pcie

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/bus"
)

// Device is an NVMe controller opened for userspace access: its BAR0 mapped and a DMA
// allocator whose buffers the controller can reach.
type Device struct {
	ctrl  Controller
	regs  *bus.MMIO
	bar0  []byte
	dma   *arena
	close []func() error // undo steps, run last first
}

// Open opens the controller at address, which must be bound to vfio-pci or
// uio_pci_generic (see scripts/setup.sh).
func Open(address string) (*Device, error) {
	canon, err := CanonicalAddress(address)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(devicesDir(), canon)); err != nil {
		return nil, notFound(canon)
	}
	c, err := describe(canon)
	if err != nil {
		return nil, err
	}
	switch c.Driver {
	case DriverVFIO:
		return openVFIO(c)
	case DriverUIO:
		return openUIO(c)
	case DriverNVMe:
		hint := ""
		if len(c.BlockDevices) > 0 {
			hint = fmt.Sprintf(", or test its namespaces through the kernel with io_uring: /dev/%s", strings.Join(c.BlockDevices, ", /dev/"))
		}
		return nil, fmt.Errorf("pcie: %s is bound to the kernel nvme driver; bind it to vfio-pci with `sudo PCI_ALLOWED=%s %s`%s", canon, canon, setupScript, hint)
	case "":
		return nil, fmt.Errorf("pcie: %s is not bound to any driver; bind it to vfio-pci with `sudo PCI_ALLOWED=%s %s`", canon, canon, setupScript)
	default:
		return nil, fmt.Errorf("pcie: %s is bound to driver %q; nvmeperf needs vfio-pci or uio_pci_generic (`sudo PCI_ALLOWED=%s %s`)", canon, c.Driver, canon, setupScript)
	}
}

// Controller is what sysfs said about the device when it was opened.
func (d *Device) Controller() Controller { return d.ctrl }

// Registers is BAR0. Accesses fault (SIGBUS) if the device is removed; the driver core
// recovers from that.
func (d *Device) Registers() *bus.MMIO { return d.regs }

// Allocator hands out hugepage DMA memory mapped for this device.
func (d *Device) Allocator() bus.Allocator { return d.dma }

// Close unmaps DMA memory and BAR0, restores the PCI command register and closes the
// device. The controller must be disabled first so it does no more DMA.
func (d *Device) Close() error {
	if d == nil || d.close == nil {
		return nil
	}
	var errs []error
	for i := len(d.close) - 1; i >= 0; i-- {
		if err := d.close[i](); err != nil {
			errs = append(errs, err)
		}
	}
	d.close = nil
	return errors.Join(errs...)
}

func (d *Device) onClose(f func() error) { d.close = append(d.close, f) }

func (d *Device) fail(err error) (*Device, error) {
	_ = d.Close()
	return nil, err
}

func permissionHint(err error) string {
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return " (permission denied: run nvmeperf as root)"
	}
	return ""
}

// mapBAR maps size bytes of fd at off as BAR0.
func (d *Device) mapBAR(fd int, off int64, size int, what string) error {
	if size <= 0 {
		return fmt.Errorf("pcie: %s: BAR0 has size %d", d.ctrl.Address, size)
	}
	mem, err := unix.Mmap(fd, off, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("pcie: %s: mapping BAR0 through %s: %w", d.ctrl.Address, what, err)
	}
	d.onClose(func() error {
		if err := unix.Munmap(mem); err != nil {
			return fmt.Errorf("pcie: %s: unmapping BAR0: %w", d.ctrl.Address, err)
		}
		return nil
	})
	regs, err := bus.NewMMIO(mem)
	if err != nil {
		return fmt.Errorf("pcie: %s: %w", d.ctrl.Address, err)
	}
	d.bar0, d.regs = mem, regs
	return nil
}

// enableBusMaster sets Memory Space and Bus Master Enable in the PCI command register
// through config space at cfgOff of fd, and restores the old value on Close.
func (d *Device) enableBusMaster(f *os.File, cfgOff int64) error {
	var buf [2]byte
	if _, err := f.ReadAt(buf[:], cfgOff+pciCommandOffset); err != nil {
		return fmt.Errorf("pcie: %s: reading the PCI command register: %w%s", d.ctrl.Address, err, permissionHint(err))
	}
	old := uint16(buf[0]) | uint16(buf[1])<<8
	want := old | pciCommandMemorySpace | pciCommandBusMaster
	if want == old {
		return nil
	}
	if err := writeCommand(f, cfgOff, want); err != nil {
		return fmt.Errorf("pcie: %s: enabling bus mastering: %w%s", d.ctrl.Address, err, permissionHint(err))
	}
	d.onClose(func() error {
		if err := writeCommand(f, cfgOff, old); err != nil {
			return fmt.Errorf("pcie: %s: restoring the PCI command register: %w", d.ctrl.Address, err)
		}
		return nil
	})
	return nil
}

func writeCommand(f *os.File, cfgOff int64, v uint16) error {
	_, err := f.WriteAt([]byte{byte(v), byte(v >> 8)}, cfgOff+pciCommandOffset)
	return err
}

// groupBlockers lists devices in IOMMU group g bound to host drivers, which make the
// group unusable by VFIO.
func groupBlockers(g int) []string {
	dir := filepath.Join(sysfsRoot, "kernel", "iommu_groups", strconv.Itoa(g), "devices")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		drv := linkBase(filepath.Join(dir, e.Name(), "driver"))
		switch drv {
		case "", DriverVFIO, driverStub, driverPort:
			continue
		}
		out = append(out, e.Name()+" (bound to "+drv+")")
	}
	sort.Strings(out)
	return out
}
