package pcie

import "unsafe"

// VFIO ioctl numbers and argument structs, from linux/include/uapi/linux/vfio.h. Every
// VFIO ioctl is _IO(VFIO_TYPE, VFIO_BASE+n): no size or direction bits, the struct's
// argsz field carries the size instead.
const (
	vfioType = ';'
	vfioBase = 100

	vfioGetAPIVersion       = vfioType<<8 | (vfioBase + 0)  // VFIO_GET_API_VERSION
	vfioCheckExtension      = vfioType<<8 | (vfioBase + 1)  // VFIO_CHECK_EXTENSION
	vfioSetIOMMU            = vfioType<<8 | (vfioBase + 2)  // VFIO_SET_IOMMU
	vfioGroupGetStatus      = vfioType<<8 | (vfioBase + 3)  // VFIO_GROUP_GET_STATUS
	vfioGroupSetContainer   = vfioType<<8 | (vfioBase + 4)  // VFIO_GROUP_SET_CONTAINER
	vfioGroupUnsetContainer = vfioType<<8 | (vfioBase + 5)  // VFIO_GROUP_UNSET_CONTAINER
	vfioGroupGetDeviceFD    = vfioType<<8 | (vfioBase + 6)  // VFIO_GROUP_GET_DEVICE_FD
	vfioDeviceGetInfo       = vfioType<<8 | (vfioBase + 7)  // VFIO_DEVICE_GET_INFO
	vfioDeviceGetRegionInfo = vfioType<<8 | (vfioBase + 8)  // VFIO_DEVICE_GET_REGION_INFO
	vfioIOMMUGetInfo        = vfioType<<8 | (vfioBase + 12) // VFIO_IOMMU_GET_INFO
	vfioIOMMUMapDMA         = vfioType<<8 | (vfioBase + 13) // VFIO_IOMMU_MAP_DMA
	vfioIOMMUUnmapDMA       = vfioType<<8 | (vfioBase + 14) // VFIO_IOMMU_UNMAP_DMA

	vfioAPIVersion = 0 // VFIO_API_VERSION
	vfioType1IOMMU = 1 // VFIO_TYPE1_IOMMU extension and IOMMU type

	vfioGroupFlagsViable       = 1 << 0 // VFIO_GROUP_FLAGS_VIABLE
	vfioGroupFlagsContainerSet = 1 << 1 // VFIO_GROUP_FLAGS_CONTAINER_SET

	vfioDeviceFlagsPCI = 1 << 1 // VFIO_DEVICE_FLAGS_PCI

	vfioRegionInfoFlagRead  = 1 << 0 // VFIO_REGION_INFO_FLAG_READ
	vfioRegionInfoFlagWrite = 1 << 1 // VFIO_REGION_INFO_FLAG_WRITE
	vfioRegionInfoFlagMmap  = 1 << 2 // VFIO_REGION_INFO_FLAG_MMAP

	vfioDMAMapFlagRead  = 1 << 0 // VFIO_DMA_MAP_FLAG_READ
	vfioDMAMapFlagWrite = 1 << 1 // VFIO_DMA_MAP_FLAG_WRITE

	vfioIOMMUInfoPgsizes = 1 << 0 // VFIO_IOMMU_INFO_PGSIZES: IOVAPgsizes is valid
	vfioIOMMUInfoCaps    = 1 << 1 // VFIO_IOMMU_INFO_CAPS: CapOffset starts a capability chain

	vfioIOMMUType1InfoCapIOVARange = 1 // VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE

	vfioPCIBAR0RegionIndex   = 0 // VFIO_PCI_BAR0_REGION_INDEX
	vfioPCIConfigRegionIndex = 7 // VFIO_PCI_CONFIG_REGION_INDEX
)

// vfioGroupStatus is struct vfio_group_status (linux/include/uapi/linux/vfio.h), the
// argument of VFIO_GROUP_GET_STATUS.
type vfioGroupStatus struct {
	Argsz uint32
	Flags uint32 // vfioGroupFlags*
}

// vfioDeviceInfo is struct vfio_device_info (linux/include/uapi/linux/vfio.h), the
// argument of VFIO_DEVICE_GET_INFO. CapOffset and the padding came with Linux 4.x; older
// kernels read only the first 16 bytes, which argsz allows.
type vfioDeviceInfo struct {
	Argsz      uint32
	Flags      uint32 // vfioDeviceFlags*
	NumRegions uint32
	NumIRQs    uint32
	CapOffset  uint32
	_          [4]byte
}

// vfioRegionInfo is struct vfio_region_info (linux/include/uapi/linux/vfio.h), the
// argument of VFIO_DEVICE_GET_REGION_INFO: Offset is where the region lies in the device
// fd for pread/pwrite/mmap.
type vfioRegionInfo struct {
	Argsz     uint32
	Flags     uint32 // vfioRegionInfoFlag*
	Index     uint32
	CapOffset uint32
	Size      uint64
	Offset    uint64
}

// vfioIOMMUType1DMAMap is struct vfio_iommu_type1_dma_map
// (linux/include/uapi/linux/vfio.h), the argument of VFIO_IOMMU_MAP_DMA.
type vfioIOMMUType1DMAMap struct {
	Argsz uint32
	Flags uint32 // vfioDMAMapFlag*
	Vaddr uint64
	IOVA  uint64
	Size  uint64
}

// vfioIOMMUType1DMAUnmap is struct vfio_iommu_type1_dma_unmap
// (linux/include/uapi/linux/vfio.h) without the trailing flexible data[] array, which
// only the dirty-bitmap flag uses; the argument of VFIO_IOMMU_UNMAP_DMA.
type vfioIOMMUType1DMAUnmap struct {
	Argsz uint32
	Flags uint32
	IOVA  uint64
	Size  uint64
}

// vfioIOMMUType1Info is struct vfio_iommu_type1_info (linux/include/uapi/linux/vfio.h),
// the argument of VFIO_IOMMU_GET_INFO. The kernel struct ends after CapOffset and the
// compiler pads it to 24 bytes; the padding is explicit here. When the capabilities do
// not fit in Argsz, the kernel sets Argsz to the size they need and CapOffset to 0.
type vfioIOMMUType1Info struct {
	Argsz       uint32
	Flags       uint32 // vfioIOMMUInfo*
	IOVAPgsizes uint64 // bitmap of the IOMMU page sizes
	CapOffset   uint32 // from the start of this struct; 0 ends the chain
	_           [4]byte
}

// vfioInfoCapHeader is struct vfio_info_cap_header (linux/include/uapi/linux/vfio.h),
// the head of every capability in a VFIO info chain.
type vfioInfoCapHeader struct {
	ID      uint16
	Version uint16
	Next    uint32 // offset of the next capability from the start of the info struct; 0 ends
}

// vfioIOMMUType1InfoCapIOVARangeHeader is struct vfio_iommu_type1_info_cap_iova_range
// (linux/include/uapi/linux/vfio.h) up to its flexible array: NrIOVAs vfioIOVARange
// entries follow it.
type vfioIOMMUType1InfoCapIOVARangeHeader struct {
	Header   vfioInfoCapHeader
	NrIOVAs  uint32
	Reserved uint32
}

// vfioIOVARange is struct vfio_iova_range (linux/include/uapi/linux/vfio.h): the IOVAs
// Start..End, End inclusive, that the IOMMU can map.
type vfioIOVARange struct {
	Start uint64
	End   uint64
}

// Compile-time size checks against the kernel's layouts.
var (
	_ [24]byte = [unsafe.Sizeof(vfioIOMMUType1Info{})]byte{}
	_ [8]byte  = [unsafe.Sizeof(vfioInfoCapHeader{})]byte{}
	_ [16]byte = [unsafe.Sizeof(vfioIOMMUType1InfoCapIOVARangeHeader{})]byte{}
	_ [16]byte = [unsafe.Sizeof(vfioIOVARange{})]byte{}
	_ [8]byte  = [unsafe.Sizeof(vfioGroupStatus{})]byte{}
	_ [24]byte = [unsafe.Sizeof(vfioDeviceInfo{})]byte{}
	_ [32]byte = [unsafe.Sizeof(vfioRegionInfo{})]byte{}
	_ [32]byte = [unsafe.Sizeof(vfioIOMMUType1DMAMap{})]byte{}
	_ [24]byte = [unsafe.Sizeof(vfioIOMMUType1DMAUnmap{})]byte{}
)

// PCI configuration space: the Command register (PCI Local Bus Specification 3.0,
// section 6.2.2) at offset 0x04, 16 bits.
const (
	pciCommandOffset      = 0x04
	pciCommandMemorySpace = 1 << 1 // Memory Space Enable: the device answers BAR accesses
	pciCommandBusMaster   = 1 << 2 // Bus Master Enable: the device may issue DMA
)
