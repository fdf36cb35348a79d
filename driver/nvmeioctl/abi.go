package nvmeioctl

import "unsafe"

// The kernel ABI of the NVMe controller character device, as linux
// include/uapi/linux/nvme_ioctl.h declares it. The struct is in host byte order (kernel
// ABI, not device data); the data it points at is device data (little endian).

// AdminCmd is struct nvme_passthru_cmd, which the header also names struct
// nvme_admin_cmd: one admin command for NVME_IOCTL_ADMIN_CMD. The kernel fills the
// command identifier and builds the PRPs from Addr and DataLen; Result receives
// Dword 0 of the completion.
type AdminCmd struct {
	Opcode      uint8  // 0
	Flags       uint8  // 1
	Rsvd1       uint16 // 2
	NSID        uint32 // 4
	CDW2        uint32 // 8
	CDW3        uint32 // 12
	Metadata    uint64 // 16: user address of separate metadata (unused by admin commands)
	Addr        uint64 // 24: user address of the data buffer
	MetadataLen uint32 // 32
	DataLen     uint32 // 36
	CDW10       uint32 // 40
	CDW11       uint32 // 44
	CDW12       uint32 // 48
	CDW13       uint32 // 52
	CDW14       uint32 // 56
	CDW15       uint32 // 60
	TimeoutMs   uint32 // 64: 0 = the driver's admin timeout
	Result      uint32 // 68: completion Dword 0, written by the kernel
}

var _ [72]byte = [unsafe.Sizeof(AdminCmd{})]byte{}

// NVME_IOCTL_ADMIN_CMD = _IOWR('N', 0x41, struct nvme_admin_cmd): direction bits 31:30
// (read and write), size bits 29:16, type 'N' bits 15:8, number bits 7:0.
const ioctlAdminCmd = 3<<30 | uint32(unsafe.Sizeof(AdminCmd{}))<<16 | 'N'<<8 | 0x41

// Compile-time check of the encoding against the value the kernel headers yield: either
// subtraction overflows the unsigned constant unless they are equal.
const (
	_ = uint32(ioctlAdminCmd - 0xC0484E41)
	_ = uint32(0xC0484E41 - ioctlAdminCmd)
)

// allNamespaces is NSID FFFFFFFFh: the log page of the controller as a whole.
const allNamespaces = 0xFFFFFFFF
