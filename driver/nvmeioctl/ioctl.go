// Package nvmeioctl reads an NVMe controller's log pages through the Linux kernel
// driver, for controllers the kernel owns (the ones nvmeperf drives through io_uring):
// admin commands passed through the controller character device /dev/nvmeX with
// NVME_IOCTL_ADMIN_CMD (abi.go), and the sysfs walk from a namespace path — a block
// device, a partition, a symlink to one, or a generic character device /dev/ngXnY — to
// the controller or controllers behind it (sysfs.go).
//
// It is a package of its own, not part of driver/uring: it shares no ring, no queue
// and no hot path with the io_uring engine, only the kernel driver underneath.
package nvmeioctl

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// ErrNotNVMe is wrapped by errors for a path or file that is not NVMe at all: a regular
// file, a block device of another driver, a character device that takes no NVMe ioctl.
var ErrNotNVMe = errors.New("not an NVMe device")

// ErrPermission is wrapped when the kernel refuses the device or the command to this
// process: admin passthrough needs CAP_SYS_ADMIN.
var ErrPermission = errors.New("admin passthrough needs root (CAP_SYS_ADMIN)")

// StatusError is an admin command the controller completed with an error status.
type StatusError struct {
	Command string
	Status  spec.Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s failed: %v", e.Command, e.Status)
}

// Controller is an open controller character device.
type Controller struct {
	path string
	fd   int
}

// Open opens a controller character device (/dev/nvmeX) for admin commands. Reading
// is enough: the kernel checks the capability, not the open mode, for admin commands.
func Open(path string) (*Controller, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("nvmeioctl: opening %s: %w", path, classify(err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("nvmeioctl: %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		unix.Close(fd)
		return nil, fmt.Errorf("nvmeioctl: %s is not a character device: %w", path, ErrNotNVMe)
	}
	return &Controller{path: path, fd: fd}, nil
}

// newFromFD wraps an open descriptor without checks, for tests of the ioctl path on
// descriptors that are not NVMe.
func newFromFD(path string, fd int) *Controller { return &Controller{path: path, fd: fd} }

// Path is the device the controller was opened through.
func (c *Controller) Path() string { return c.path }

// Close closes the device.
func (c *Controller) Close() error {
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	if err != nil {
		return fmt.Errorf("nvmeioctl: closing %s: %w", c.path, err)
	}
	return nil
}

// classify wraps the errnos that mean "not NVMe" or "not allowed" in this package's
// sentinels, keeping the errno in the chain.
func classify(err error) error {
	switch {
	case errors.Is(err, unix.ENOTTY): // the device takes no NVMe ioctl
		return fmt.Errorf("%w (%w)", ErrNotNVMe, err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w: %w", ErrPermission, err)
	}
	return err
}

// Admin sends one admin command with data transferred from the controller into buf
// (nil for none) and returns Dword 0 of its completion. The data moves through a
// mapping of its own (off the Go heap, so the kernel never sees a Go pointer that the
// runtime may move) and is copied into buf.
func (c *Controller) Admin(name string, cmd AdminCmd, buf []byte) (uint32, error) {
	if c.fd < 0 {
		return 0, fmt.Errorf("nvmeioctl: %s: %s on a closed controller", c.path, name)
	}
	var dma []byte
	if len(buf) > 0 {
		size := (len(buf) + unix.Getpagesize() - 1) &^ (unix.Getpagesize() - 1)
		var err error
		dma, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return 0, fmt.Errorf("nvmeioctl: %s: buffer for %s: %w", c.path, name, err)
		}
		defer unix.Munmap(dma)
		cmd.Addr = uint64(uintptr(unsafe.Pointer(&dma[0])))
		cmd.DataLen = uint32(len(buf))
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(c.fd), uintptr(ioctlAdminCmd), uintptr(unsafe.Pointer(&cmd)))
	if errno != 0 {
		return 0, fmt.Errorf("nvmeioctl: %s: %s: %w", c.path, name, classify(errno))
	}
	if r != 0 {
		// A positive return is the completion's status field (bits 15:1 of the CQE
		// status word), as the kernel stores it.
		return 0, fmt.Errorf("nvmeioctl: %s: %w", c.path, &StatusError{Command: name, Status: spec.Status(r)})
	}
	copy(buf, dma)
	return cmd.Result, nil
}

// GetLogPage reads len(buf) bytes of log page lid for nsid from offset 0. len(buf) must
// be a non-zero multiple of 4 (the command counts dwords).
func (c *Controller) GetLogPage(lid uint8, nsid uint32, buf []byte) error {
	if len(buf) == 0 || len(buf)%4 != 0 {
		return fmt.Errorf("nvmeioctl: log page %#02x: length %d is not a non-zero multiple of 4", lid, len(buf))
	}
	_, err := c.Admin(fmt.Sprintf("Get Log Page %#02x", lid), getLogPageCmd(lid, nsid, len(buf)), buf)
	return err
}

// getLogPageCmd builds Get Log Page for size bytes from offset 0 (NVMe Base 2.0,
// figures 197-199).
func getLogPageCmd(lid uint8, nsid uint32, size int) AdminCmd {
	numd := uint32(size/4 - 1) // 0's based, split over NUMDL (CDW10 31:16) and NUMDU (CDW11 15:0)
	return AdminCmd{
		Opcode: uint8(spec.AdminGetLogPage),
		NSID:   nsid,
		CDW10:  uint32(lid) | (numd&0xFFFF)<<16,
		CDW11:  numd >> 16,
	}
}

// SMART reads the SMART / Health Information log (LID 02h) of the controller as a
// whole (NSID FFFFFFFFh).
func (c *Controller) SMART() (spec.SMARTLog, error) {
	var log spec.SMARTLog
	if err := c.GetLogPage(spec.LogSMARTHealth, allNamespaces, asBytes(&log)); err != nil {
		return log, fmt.Errorf("reading the SMART log: %w", err)
	}
	return log, nil
}

// IdentifyController reads the Identify Controller data structure (CNS 01h).
func (c *Controller) IdentifyController() (spec.IdentifyController, error) {
	var id spec.IdentifyController
	cmd := AdminCmd{Opcode: uint8(spec.AdminIdentify), CDW10: spec.CNSController}
	if _, err := c.Admin("Identify Controller", cmd, asBytes(&id)); err != nil {
		return id, err
	}
	return id, nil
}

// ErrorLog reads the first n entries of the Error Information log (LID 01h): the
// newest first, as the controller keeps them. n is capped at the entries the
// controller keeps (ELPE + 1 from Identify Controller).
func (c *Controller) ErrorLog(n int) ([]spec.ErrorLogEntry, error) {
	id, err := c.IdentifyController()
	if err != nil {
		return nil, fmt.Errorf("reading the error information log: %w", err)
	}
	n = min(n, int(id.ELPE)+1)
	if n <= 0 {
		return nil, nil
	}
	entries := make([]spec.ErrorLogEntry, n)
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&entries[0])), n*spec.ErrorLogEntrySize)
	if err := c.GetLogPage(spec.LogErrorInformation, allNamespaces, buf); err != nil {
		return nil, fmt.Errorf("reading the error information log: %w", err)
	}
	return entries, nil
}

// asBytes views a device data structure as its bytes.
func asBytes[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}
