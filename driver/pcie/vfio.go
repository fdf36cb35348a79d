package pcie

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

func ioctl(fd uintptr, req uintptr, arg unsafe.Pointer) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

func ioctlInt(fd uintptr, req uintptr, arg uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, req, arg)
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

// vfioMapper maps DMA memory into the container's IOMMU domain at IOVAs it manages.
type vfioMapper struct {
	container *os.File
	iova      *iovaSpace
}

func (m *vfioMapper) contiguous() bool { return true }

func (m *vfioMapper) mapDMA(mem []byte) (uint64, error) {
	iova, err := m.iova.get(uint64(len(mem)))
	if err != nil {
		return 0, err
	}
	arg := vfioIOMMUType1DMAMap{
		Argsz: uint32(unsafe.Sizeof(vfioIOMMUType1DMAMap{})),
		Flags: vfioDMAMapFlagRead | vfioDMAMapFlagWrite,
		Vaddr: uint64(uintptr(unsafe.Pointer(&mem[0]))),
		IOVA:  iova,
		Size:  uint64(len(mem)),
	}
	if _, err := ioctl(m.container.Fd(), vfioIOMMUMapDMA, unsafe.Pointer(&arg)); err != nil {
		m.iova.put(iova, uint64(len(mem)))
		hint := ""
		if errors.Is(err, unix.ENOMEM) {
			hint = " (locked memory limit: raise RLIMIT_MEMLOCK or run as root)"
		}
		return 0, fmt.Errorf("pcie: VFIO_IOMMU_MAP_DMA of %d bytes at IOVA %#x: %w%s", len(mem), iova, err, hint)
	}
	return iova, nil
}

func (m *vfioMapper) unmapDMA(mem []byte, iova uint64) error {
	arg := vfioIOMMUType1DMAUnmap{
		Argsz: uint32(unsafe.Sizeof(vfioIOMMUType1DMAUnmap{})),
		IOVA:  iova,
		Size:  uint64(len(mem)),
	}
	if _, err := ioctl(m.container.Fd(), vfioIOMMUUnmapDMA, unsafe.Pointer(&arg)); err != nil {
		return fmt.Errorf("pcie: VFIO_IOMMU_UNMAP_DMA at IOVA %#x: %w", iova, err)
	}
	m.iova.put(iova, uint64(len(mem)))
	return nil
}

func openVFIO(c Controller) (*Device, error) {
	d := &Device{ctrl: c}
	if c.IOMMUGroup < 0 {
		return nil, fmt.Errorf("pcie: %s is bound to vfio-pci but has no IOMMU group; enable the IOMMU (intel_iommu=on or amd_iommu=on) or use uio_pci_generic", c.Address)
	}
	container, err := os.OpenFile(filepath.Join(devRoot, "vfio", "vfio"), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("pcie: %s: opening the VFIO container: %w%s", c.Address, err, permissionHint(err))
	}
	d.onClose(container.Close)
	if v, err := ioctlInt(container.Fd(), vfioGetAPIVersion, 0); err != nil || v != vfioAPIVersion {
		return d.fail(fmt.Errorf("pcie: %s: VFIO API version %d (error %v), want %d", c.Address, v, err, vfioAPIVersion))
	}
	if ok, err := ioctlInt(container.Fd(), vfioCheckExtension, vfioType1IOMMU); err != nil || ok == 0 {
		return d.fail(fmt.Errorf("pcie: %s: the kernel's VFIO has no type1 IOMMU support (load vfio_iommu_type1): %v", c.Address, err))
	}

	groupPath := filepath.Join(devRoot, "vfio", strconv.Itoa(c.IOMMUGroup))
	group, err := os.OpenFile(groupPath, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return d.fail(fmt.Errorf("pcie: %s: IOMMU group %d is in use by another process", c.Address, c.IOMMUGroup))
		}
		return d.fail(fmt.Errorf("pcie: %s: opening IOMMU group %s: %w%s", c.Address, groupPath, err, permissionHint(err)))
	}
	d.onClose(group.Close)
	status := vfioGroupStatus{Argsz: uint32(unsafe.Sizeof(vfioGroupStatus{}))}
	if _, err := ioctl(group.Fd(), vfioGroupGetStatus, unsafe.Pointer(&status)); err != nil {
		return d.fail(fmt.Errorf("pcie: %s: VFIO_GROUP_GET_STATUS: %w", c.Address, err))
	}
	if status.Flags&vfioGroupFlagsViable == 0 {
		msg := fmt.Sprintf("pcie: %s: IOMMU group %d is not viable: every device in it must be bound to vfio-pci or unbound", c.Address, c.IOMMUGroup)
		if b := groupBlockers(c.IOMMUGroup); len(b) > 0 {
			msg += "; bound to host drivers: " + strings.Join(b, ", ")
		}
		return d.fail(errors.New(msg))
	}
	cfd := int32(container.Fd())
	if _, err := ioctl(group.Fd(), vfioGroupSetContainer, unsafe.Pointer(&cfd)); err != nil {
		return d.fail(fmt.Errorf("pcie: %s: VFIO_GROUP_SET_CONTAINER: %w", c.Address, err))
	}
	d.onClose(func() error {
		_, err := ioctl(group.Fd(), vfioGroupUnsetContainer, nil)
		if err != nil {
			return fmt.Errorf("pcie: %s: VFIO_GROUP_UNSET_CONTAINER: %w", c.Address, err)
		}
		return nil
	})
	if _, err := ioctlInt(container.Fd(), vfioSetIOMMU, vfioType1IOMMU); err != nil {
		return d.fail(fmt.Errorf("pcie: %s: VFIO_SET_IOMMU type1: %w", c.Address, err))
	}
	ranges, reported, err := iommuIOVARanges(container)
	if err != nil {
		return d.fail(fmt.Errorf("pcie: %s: %w", c.Address, err))
	}
	if !reported {
		ranges = legacyIOVAWindow
	}
	if bars, err := readBARs(c.Address); err == nil { // cmb.go: no IOVA may alias a BAR
		ranges = excludeBARs(ranges, bars)
	}
	iova, err := newIOVASpace(ranges)
	if err != nil {
		return d.fail(fmt.Errorf("pcie: %s: %w", c.Address, err))
	}

	name, err := unix.BytePtrFromString(c.Address)
	if err != nil {
		return d.fail(fmt.Errorf("pcie: %s: %w", c.Address, err))
	}
	fd, err := ioctl(group.Fd(), vfioGroupGetDeviceFD, unsafe.Pointer(name))
	if err != nil {
		return d.fail(fmt.Errorf("pcie: %s: VFIO_GROUP_GET_DEVICE_FD: %w", c.Address, err))
	}
	dev := os.NewFile(fd, "vfio-device "+c.Address)
	d.onClose(dev.Close)
	d.vfio = dev

	info := vfioDeviceInfo{Argsz: uint32(unsafe.Sizeof(vfioDeviceInfo{}))}
	if _, err := ioctl(dev.Fd(), vfioDeviceGetInfo, unsafe.Pointer(&info)); err != nil {
		return d.fail(fmt.Errorf("pcie: %s: VFIO_DEVICE_GET_INFO: %w", c.Address, err))
	}
	if info.Flags&vfioDeviceFlagsPCI == 0 || info.NumRegions <= vfioPCIConfigRegionIndex {
		return d.fail(fmt.Errorf("pcie: %s: VFIO device is not PCI (flags %#x, %d regions)", c.Address, info.Flags, info.NumRegions))
	}
	bar, err := regionInfo(dev, vfioPCIBAR0RegionIndex)
	if err != nil {
		return d.fail(fmt.Errorf("pcie: %s: BAR0: %w", c.Address, err))
	}
	if bar.Flags&vfioRegionInfoFlagMmap == 0 {
		return d.fail(fmt.Errorf("pcie: %s: VFIO says BAR0 cannot be mmap-ed (flags %#x)", c.Address, bar.Flags))
	}
	cfg, err := regionInfo(dev, vfioPCIConfigRegionIndex)
	if err != nil {
		return d.fail(fmt.Errorf("pcie: %s: config space: %w", c.Address, err))
	}
	if err := d.enableBusMaster(dev, int64(cfg.Offset)); err != nil {
		return d.fail(err)
	}
	if err := d.mapBAR(int(dev.Fd()), int64(bar.Offset), int(bar.Size), "VFIO"); err != nil {
		return d.fail(err)
	}
	d.dma = newArena(&vfioMapper{container: container, iova: iova})
	d.dma.stopDMA = d.ClearBusMaster
	// DMA mappings go before the container closes: onClose runs in reverse.
	d.onClose(d.dma.close)
	return d, nil
}

func regionInfo(dev *os.File, index uint32) (vfioRegionInfo, error) {
	r := vfioRegionInfo{Argsz: uint32(unsafe.Sizeof(vfioRegionInfo{})), Index: index}
	if _, err := ioctl(dev.Fd(), vfioDeviceGetRegionInfo, unsafe.Pointer(&r)); err != nil {
		return r, fmt.Errorf("VFIO_DEVICE_GET_REGION_INFO index %d: %w", index, err)
	}
	return r, nil
}

// iommuIOVARanges asks the container's IOMMU which IOVAs it can map
// (VFIO_IOMMU_GET_INFO, IOVA range capability). reported is false on kernels without
// the capability (before Linux 5.4).
func iommuIOVARanges(container *os.File) (ranges []iovaRange, reported bool, err error) {
	size := uint32(unsafe.Sizeof(vfioIOMMUType1Info{}))
	for range 3 { // the chain can grow between the calls only if devices are added
		buf := make([]uint64, (size+7)/8) // 8-aligned, as the structs need
		info := (*vfioIOMMUType1Info)(unsafe.Pointer(&buf[0]))
		info.Argsz = size
		if _, err := ioctl(container.Fd(), vfioIOMMUGetInfo, unsafe.Pointer(&buf[0])); err != nil {
			return nil, false, fmt.Errorf("VFIO_IOMMU_GET_INFO: %w", err)
		}
		if info.Flags&vfioIOMMUInfoCaps == 0 {
			return nil, false, nil
		}
		if info.Argsz > size {
			size = info.Argsz // too small for the capabilities: ask again with room
			continue
		}
		return parseIOVARanges(unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), int(size)))
	}
	return nil, false, fmt.Errorf("VFIO_IOMMU_GET_INFO: the capability chain kept growing (last size %d)", size)
}

// parseIOVARanges finds the IOVA range capability in buf, a vfioIOMMUType1Info and its
// capability chain as the kernel filled them. Capabilities need not be aligned: before
// Linux 6.7 the kernel packed them, so a 12-byte DMA-available capability leaves the
// next one at offset 68. Each struct is therefore copied out, not pointed into.
func parseIOVARanges(buf []byte) (ranges []iovaRange, found bool, err error) {
	var info vfioIOMMUType1Info
	if !decode(&info, buf, 0) {
		return nil, false, fmt.Errorf("VFIO_IOMMU_GET_INFO: %d-byte reply", len(buf))
	}
	seen := map[uint32]bool{}
	for off := info.CapOffset; off != 0; {
		var hdr vfioInfoCapHeader
		if seen[off] || !decode(&hdr, buf, uint64(off)) {
			return nil, false, fmt.Errorf("VFIO_IOMMU_GET_INFO: bad capability offset %#x in a %d-byte reply", off, len(buf))
		}
		seen[off] = true
		if hdr.ID != vfioIOMMUType1InfoCapIOVARange {
			off = hdr.Next
			continue
		}
		var c vfioIOMMUType1InfoCapIOVARangeHeader
		if !decode(&c, buf, uint64(off)) {
			return nil, false, fmt.Errorf("VFIO_IOMMU_GET_INFO: IOVA range capability at %#x runs past the %d-byte reply", off, len(buf))
		}
		first := uint64(off) + uint64(unsafe.Sizeof(c))
		for i := range uint64(c.NrIOVAs) {
			var r vfioIOVARange
			if !decode(&r, buf, first+i*uint64(unsafe.Sizeof(r))) {
				return nil, false, fmt.Errorf("VFIO_IOMMU_GET_INFO: %d IOVA ranges run past the %d-byte reply", c.NrIOVAs, len(buf))
			}
			ranges = append(ranges, iovaRange{start: r.Start, end: r.End})
		}
		return ranges, true, nil
	}
	return nil, false, nil
}

// decode copies the bytes of an ABI struct at off in buf into *v, in the machine's byte
// order as the kernel wrote them; false when buf is too short.
func decode[T any](v *T, buf []byte, off uint64) bool {
	n := uint64(unsafe.Sizeof(*v))
	if off > uint64(len(buf)) || n > uint64(len(buf))-off {
		return false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(v)), n), buf[off:off+n])
	return true
}
