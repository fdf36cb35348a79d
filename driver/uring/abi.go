package uring

import "unsafe"

// This file holds the kernel ABI nvmeperf speaks to io_uring and to the NVMe generic
// character device: system call numbers, constants and the binary structs, laid out as
// linux include/uapi/linux/io_uring.h and include/uapi/linux/nvme_ioctl.h declare them.
// The structs are in host byte order (they are kernel ABI, not device data).

// System call numbers (the same on amd64 and arm64: io_uring came after the tables merged).
const (
	sysIOURingSetup    = 425
	sysIOURingEnter    = 426
	sysIOURingRegister = 427
)

// io_uring_setup flags (IORING_SETUP_*).
const (
	setupIOPoll       = 1 << 0  // IORING_SETUP_IOPOLL: completions are polled from the device
	setupSQPoll       = 1 << 1  // IORING_SETUP_SQPOLL: a kernel thread consumes the SQ
	setupCQSize       = 1 << 3  // IORING_SETUP_CQSIZE: cq_entries is given
	setupSubmitAll    = 1 << 7  // IORING_SETUP_SUBMIT_ALL: keep submitting after an error
	setupCoopTaskrun  = 1 << 8  // IORING_SETUP_COOP_TASKRUN: no IPI to run completion work
	setupTaskrunFlag  = 1 << 9  // IORING_SETUP_TASKRUN_FLAG: IORING_SQ_TASKRUN tells when completion work waits
	setupSQE128       = 1 << 10 // IORING_SETUP_SQE128: 128-byte SQEs (passthrough)
	setupCQE32        = 1 << 11 // IORING_SETUP_CQE32: 32-byte CQEs (passthrough)
	setupSingleIssuer = 1 << 12 // IORING_SETUP_SINGLE_ISSUER: one task submits
	setupDeferTaskrun = 1 << 13 // IORING_SETUP_DEFER_TASKRUN: completion work runs in io_uring_enter
)

// io_uring_params.features bits (IORING_FEAT_*).
const (
	featSingleMmap = 1 << 0 // IORING_FEAT_SINGLE_MMAP: SQ and CQ rings share one mapping
	featNoDrop     = 1 << 1 // IORING_FEAT_NODROP: CQ overflow is buffered, not dropped
	featExtArg     = 1 << 8 // IORING_FEAT_EXT_ARG: io_uring_enter takes io_uring_getevents_arg
)

// io_uring_enter flags (IORING_ENTER_*).
const (
	enterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS: wait for min_complete completions
	enterSQWakeup  = 1 << 1 // IORING_ENTER_SQ_WAKEUP: wake the SQPOLL thread
	enterExtArg    = 1 << 3 // IORING_ENTER_EXT_ARG: arg is an io_uring_getevents_arg
)

// SQ ring flags the kernel sets (IORING_SQ_*).
const (
	sqNeedWakeup = 1 << 0 // IORING_SQ_NEED_WAKEUP: the SQPOLL thread sleeps
	sqTaskrun    = 1 << 2 // IORING_SQ_TASKRUN: completion work waits for an io_uring_enter (TASKRUN_FLAG)
)

// mmap offsets of the three regions (IORING_OFF_*).
const (
	offSQRing = 0          // IORING_OFF_SQ_RING
	offCQRing = 0x8000000  // IORING_OFF_CQ_RING
	offSQEs   = 0x10000000 // IORING_OFF_SQES
)

// io_uring_register opcodes (IORING_REGISTER_*).
const (
	registerBuffers = 0 // IORING_REGISTER_BUFFERS
	registerFiles   = 2 // IORING_REGISTER_FILES
)

// SQE opcodes (enum io_uring_op).
const (
	opNop        = 0  // IORING_OP_NOP
	opReadFixed  = 4  // IORING_OP_READ_FIXED
	opWriteFixed = 5  // IORING_OP_WRITE_FIXED
	opRead       = 22 // IORING_OP_READ
	opWrite      = 23 // IORING_OP_WRITE
	opURingCmd   = 46 // IORING_OP_URING_CMD
)

// SQE flags (IOSQE_*).
const sqeFixedFile = 1 << 0 // IOSQE_FIXED_FILE: fd is an index into the registered files

// uring_cmd_flags (IORING_URING_CMD_*).
const uringCmdFixed = 1 << 0 // IORING_URING_CMD_FIXED: buf_index names a registered buffer (Linux 6.1)

// sqOffsets is struct io_sqring_offsets: where each SQ ring field lies in the SQ mapping.
type sqOffsets struct {
	Head        uint32
	Tail        uint32
	RingMask    uint32
	RingEntries uint32
	Flags       uint32
	Dropped     uint32
	Array       uint32
	Resv1       uint32
	UserAddr    uint64
}

var _ [40]byte = [unsafe.Sizeof(sqOffsets{})]byte{}

// cqOffsets is struct io_cqring_offsets: where each CQ ring field lies in the CQ mapping.
type cqOffsets struct {
	Head        uint32
	Tail        uint32
	RingMask    uint32
	RingEntries uint32
	Overflow    uint32
	CQEs        uint32
	Flags       uint32
	Resv1       uint32
	UserAddr    uint64
}

var _ [40]byte = [unsafe.Sizeof(cqOffsets{})]byte{}

// params is struct io_uring_params, passed to and filled by io_uring_setup.
type params struct {
	SQEntries    uint32
	CQEntries    uint32
	Flags        uint32
	SQThreadCPU  uint32
	SQThreadIdle uint32 // milliseconds
	Features     uint32
	WQFd         uint32
	Resv         [3]uint32
	SQOff        sqOffsets
	CQOff        cqOffsets
}

var _ [120]byte = [unsafe.Sizeof(params{})]byte{}

// sqe is struct io_uring_sqe, the 64-byte submission entry. The kernel's unions are
// flattened to the member nvmeperf uses; the comment names the others.
type sqe struct {
	Opcode      uint8
	Flags       uint8 // IOSQE_*
	IOPrio      uint16
	FD          int32  // file descriptor, or registered file index with IOSQE_FIXED_FILE
	Off         uint64 // off | addr2 | {cmd_op u32, __pad1 u32} for URING_CMD
	Addr        uint64 // addr | splice_off_in
	Len         uint32
	OpFlags     uint32 // rw_flags | ... | uring_cmd_flags
	UserData    uint64
	BufIndex    uint16 // buf_index | buf_group (packed)
	Personality uint16
	FileIndex   uint32 // splice_fd_in | file_index | optlen | {addr_len, __pad3}
	Addr3       uint64 // addr3 | optval | start of cmd[] for URING_CMD
	_           [8]byte
}

var _ [64]byte = [unsafe.Sizeof(sqe{})]byte{}

// setCmdOp stores cmd_op, the u32 that overlays the low-addressed half of off.
func (s *sqe) setCmdOp(op uint32) {
	s.Off = 0
	*(*uint32)(unsafe.Pointer(&s.Off)) = op
}

// cmdOp reads cmd_op back (tests).
func (s *sqe) cmdOp() uint32 { return *(*uint32)(unsafe.Pointer(&s.Off)) }

// sqe128 is the 128-byte SQE of a ring set up with IORING_SETUP_SQE128: the 64-byte
// sqe followed by 64 more bytes, so the cmd[] area starting at Addr3 (offset 48) holds
// 80 bytes, room for an nvme_uring_cmd.
type sqe128 struct {
	sqe
	Ext [64]byte
}

var _ [128]byte = [unsafe.Sizeof(sqe128{})]byte{}

// uringCmdOffset is offsetof(struct io_uring_sqe, cmd).
const uringCmdOffset = 48

var _ [uringCmdOffset]byte = [unsafe.Offsetof(sqe{}.Addr3)]byte{}

// nvmeCmd returns the nvme_uring_cmd payload inside the SQE's cmd[] area.
func (s *sqe128) nvmeCmd() *nvmeURingCmd {
	return (*nvmeURingCmd)(unsafe.Add(unsafe.Pointer(s), uringCmdOffset))
}

// The payload must fit in the 80-byte cmd[] area of a 128-byte SQE.
const _ = uint(128 - uringCmdOffset - unsafe.Sizeof(nvmeURingCmd{}))

// cqe is struct io_uring_cqe, the 16-byte completion entry.
type cqe struct {
	UserData uint64
	Res      int32 // result: bytes or -errno; for NVMe passthrough the NVMe status field or -errno
	Flags    uint32
}

var _ [16]byte = [unsafe.Sizeof(cqe{})]byte{}

// cqe32 is the 32-byte CQE of a ring set up with IORING_SETUP_CQE32: big_cqe[] follows,
// carrying the NVMe completion's dword 0 and 1 for passthrough.
type cqe32 struct {
	cqe
	BigCQE [2]uint64
}

var _ [32]byte = [unsafe.Sizeof(cqe32{})]byte{}

// getEventsArg is struct io_uring_getevents_arg, passed with IORING_ENTER_EXT_ARG to
// bound a wait with a timeout.
type getEventsArg struct {
	Sigmask     uint64
	SigmaskSize uint32
	MinWaitUsec uint32 // was pad; min_wait_usec since Linux 6.12, 0 = unused
	TS          uint64 // pointer to a struct __kernel_timespec
}

var _ [24]byte = [unsafe.Sizeof(getEventsArg{})]byte{}

// kernelTimespec is struct __kernel_timespec (include/uapi/linux/time_types.h).
type kernelTimespec struct {
	Sec  int64
	Nsec int64
}

var _ [16]byte = [unsafe.Sizeof(kernelTimespec{})]byte{}

// nvmeURingCmd is struct nvme_uring_cmd (include/uapi/linux/nvme_ioctl.h): an NVMe
// command for the generic character device /dev/ngXnY, carried in the cmd[] area of an
// IORING_OP_URING_CMD SQE with cmd_op NVME_URING_CMD_IO. The kernel fills the CID and
// builds the PRPs from Addr and DataLen.
type nvmeURingCmd struct {
	Opcode      uint8
	Flags       uint8
	Rsvd1       uint16
	NSID        uint32
	CDW2        uint32
	CDW3        uint32
	Metadata    uint64
	Addr        uint64 // user address of the data
	MetadataLen uint32
	DataLen     uint32
	CDW10       uint32 // SLBA bits 31:0 for Read/Write
	CDW11       uint32 // SLBA bits 63:32
	CDW12       uint32 // NLB - 1 in bits 15:0
	CDW13       uint32
	CDW14       uint32
	CDW15       uint32
	TimeoutMs   uint32
	Rsvd2       uint32
}

var _ [72]byte = [unsafe.Sizeof(nvmeURingCmd{})]byte{}

// ioctl numbers of the NVMe generic character device, from the _IO/_IOWR encoding
// (direction bits 31:30, size bits 29:16, type 'N' bits 15:8, number bits 7:0).
const (
	nvmeIoctlID = 0x4E40 // NVME_IOCTL_ID = _IO('N', 0x40): returns the namespace ID
	// NVME_URING_CMD_IO = _IOWR('N', 0x80, struct nvme_uring_cmd).
	nvmeURingCmdIO = 3<<30 | uint32(unsafe.Sizeof(nvmeURingCmd{}))<<16 | 'N'<<8 | 0x80
)

// Compile-time check of the encoding against the value the kernel headers yield: either
// subtraction overflows the unsigned constant unless they are equal.
const (
	_ = uint32(nvmeURingCmdIO - 0xC0484E80)
	_ = uint32(0xC0484E80 - nvmeURingCmdIO)
)
