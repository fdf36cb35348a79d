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
	ctrl   Controller
	regs   *bus.MMIO
	bar0   []byte
	dma    *arena
	cfg    *os.File       // PCI config space: the VFIO config region or sysfs config
	cfgOff int64          // where config space starts in cfg
	vfio   *os.File       // the VFIO device, for mapping more BARs (cmb.go); nil under UIO
	close  []func() error // undo steps, run last first
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

// ClearBusMaster clears Bus Master Enable in the PCI command register, after which the
// controller cannot start DMA. The driver calls it after disabling the controller
// (CC.EN=0, CSTS.RDY=0) and before DMA memory is freed: a controller that failed to
// stop must not write into memory that is being handed back to the kernel. Close calls
// it too; clearing it twice is harmless.
func (d *Device) ClearBusMaster() error {
	if d == nil || d.cfg == nil {
		return nil
	}
	cmd, err := readCommand(d.cfg, d.cfgOff)
	if err != nil {
		return fmt.Errorf("pcie: %s: reading the PCI command register: %w", d.ctrl.Address, err)
	}
	if cmd&pciCommandBusMaster == 0 {
		return nil
	}
	if err := writeCommand(d.cfg, d.cfgOff, cmd&^pciCommandBusMaster); err != nil {
		return fmt.Errorf("pcie: %s: clearing bus mastering: %w", d.ctrl.Address, err)
	}
	return nil
}

// StopDMA is ClearBusMaster, under the name the driver core's optional quiesce
// interface uses; the Allocator offers it too.
func (d *Device) StopDMA() error { return d.ClearBusMaster() }

// Close stops DMA and gives everything back, in the order that keeps a controller from
// writing to freed memory: bus mastering cleared, DMA memory unmapped (IOMMU mappings
// removed, hugepages freed), BAR0 unmapped, the PCI command register restored (without
// Bus Master Enable), the device closed. The driver must have disabled the controller
// first.
func (d *Device) Close() error {
	if d == nil || d.close == nil {
		return nil
	}
	var errs []error
	if err := d.ClearBusMaster(); err != nil {
		errs = append(errs, err)
	}
	for i := len(d.close) - 1; i >= 0; i-- {
		if err := d.close[i](); err != nil {
			errs = append(errs, err)
		}
	}
	d.close, d.cfg = nil, nil
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
// through config space at cfgOff of f, and on Close restores the old value with Bus
// Master Enable clear: a controller nobody drives must not DMA.
func (d *Device) enableBusMaster(f *os.File, cfgOff int64) error {
	old, err := readCommand(f, cfgOff)
	if err != nil {
		return fmt.Errorf("pcie: %s: reading the PCI command register: %w%s", d.ctrl.Address, err, permissionHint(err))
	}
	d.cfg, d.cfgOff = f, cfgOff
	want := old | pciCommandMemorySpace | pciCommandBusMaster
	if want != old {
		if err := writeCommand(f, cfgOff, want); err != nil {
			return fmt.Errorf("pcie: %s: enabling bus mastering: %w%s", d.ctrl.Address, err, permissionHint(err))
		}
	}
	restore := old &^ pciCommandBusMaster
	d.onClose(func() error {
		if err := writeCommand(f, cfgOff, restore); err != nil {
			return fmt.Errorf("pcie: %s: restoring the PCI command register: %w", d.ctrl.Address, err)
		}
		return nil
	})
	return nil
}

func readCommand(f *os.File, cfgOff int64) (uint16, error) {
	var buf [2]byte
	if _, err := f.ReadAt(buf[:], cfgOff+pciCommandOffset); err != nil {
		return 0, err
	}
	return uint16(buf[0]) | uint16(buf[1])<<8, nil
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
