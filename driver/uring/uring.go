// Package uring drives kernel block devices, regular files and NVMe generic character
// devices (/dev/ngXnY, passthrough) through io_uring, as a target.Target, so the kernel
// I/O path is measured by the same workload, pinning and reports as the userspace
// driver.
//
// Each queue is its own ring, set up on the worker's locked thread, with the file and
// the queue's buffers (mmap-ed, off the Go heap) registered, so an I/O is one SQE with
// READ_FIXED/WRITE_FIXED (or URING_CMD carrying an NVMe Read/Write) and no allocation.
// The ring is written directly over the raw system calls; abi.go holds the kernel ABI.
package uring

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/blockdev"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// Options choose how a device or file is driven.
type Options struct {
	// SQPoll has a kernel thread consume the submission queue (IORING_SETUP_SQPOLL), so
	// submitting needs no system call.
	SQPoll bool
	// IOPoll polls the device for completions instead of taking interrupts
	// (IORING_SETUP_IOPOLL, "hipri"); the NVMe driver needs poll queues
	// (nvme.poll_queues=N) for it.
	IOPoll bool
	// Passthrough sends NVMe commands through the generic character device
	// (IORING_OP_URING_CMD). It is automatic for /dev/ngXnY; for /dev/nvmeXnY it
	// switches to the matching /dev/ngXnY.
	Passthrough bool
	// AllowDestructive skips the checks that refuse writing to a device that is mounted,
	// partitioned or holds a file system.
	AllowDestructive bool
	// Size is the size in bytes of a regular file: it is created or extended to Size
	// when smaller, and I/O stays within Size. 0 uses the file's current size.
	Size int64
	// Writes says the workload writes, so the device is opened for writing and checked.
	Writes bool
	// BusyPoll never blocks in Poll waiting for a completion: each Poll is one
	// non-blocking io_uring_enter at most (SPDK-style spinning). By default a Poll that
	// finds nothing to reap waits in the kernel for one completion (up to waitTimeout)
	// when its queue is the only io_uring queue of its thread, as fio does, which costs
	// far less CPU per I/O.
	BusyPoll bool
}

// Target is a kernel device or file opened for io_uring.
type Target struct {
	path     string
	opt      Options
	fd       int
	info     target.Info
	lbaSize  uint32
	capacity uint64

	passthrough bool
	nsid        uint32
	fixedCmd    bool // IORING_URING_CMD_FIXED usable (Linux 6.1+)
	created     bool // Open created the file
}

// Created reports whether Open created the file (it did not exist before), so a caller
// that fails later can remove what it made and nothing else.
func (t *Target) Created() bool { return t.created }

var _ target.Target = (*Target)(nil)

// Open opens path (a block device, a regular file, or an NVMe generic character device)
// for io_uring with direct I/O.
func Open(path string, opt Options) (target.Target, error) {
	t, err := open(path, opt)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func open(path string, opt Options) (t *Target, err error) {
	// A file this call created is removed again when the call fails: a failed open
	// must not leave a file behind (least of all one that fills the file system).
	created, createdPath := false, path // path may be switched to /dev/ngXnY below
	defer func() {
		if err != nil && created {
			_ = unix.Unlink(createdPath)
		}
	}()
	if opt.Size < 0 {
		return nil, fmt.Errorf("io_uring: size %d of %s is negative; give a size in bytes", opt.Size, path)
	}
	// Refuse early, before touching the device, when io_uring itself is unusable.
	if err := probe(); err != nil {
		return nil, err
	}

	var st unix.Stat_t
	err = unix.Stat(path, &st)
	if errors.Is(err, unix.ENOENT) {
		if opt.Size == 0 {
			return nil, fmt.Errorf("io_uring: %s does not exist; give a size (Options.Size) to create it as a file", path)
		}
		if err = createFile(path, opt.Size); err != nil {
			return nil, err
		}
		created = true
		err = unix.Stat(path, &st)
	}
	if err != nil {
		return nil, fmt.Errorf("io_uring: %s: %w", path, err)
	}

	kind := st.Mode & unix.S_IFMT
	if opt.Passthrough && kind == unix.S_IFBLK {
		ng, err := genericFor(path)
		if err != nil {
			return nil, err
		}
		path = ng
		if err := unix.Stat(path, &st); err != nil {
			return nil, fmt.Errorf("io_uring: passthrough: %s: %w", path, err)
		}
		kind = st.Mode & unix.S_IFMT
	}
	if kind == unix.S_IFREG && opt.Size > st.Size {
		if err := extendFile(path, opt.Size, st.Size); err != nil {
			return nil, err
		}
	}
	if kind == unix.S_IFREG && opt.Size == 0 && st.Size == 0 {
		return nil, fmt.Errorf("io_uring: file %s is empty; give a size (Options.Size) to extend it", path)
	}

	di, err := blockdev.Inspect(path)
	if err != nil {
		return nil, fmt.Errorf("io_uring: %w", err)
	}
	t = &Target{path: path, opt: opt, fd: -1, lbaSize: di.LBASize, capacity: di.Capacity, created: created}
	if di.Kind == blockdev.KindFile && opt.Size > 0 {
		t.capacity = uint64(opt.Size)
	}
	t.capacity -= t.capacity % uint64(t.lbaSize)
	if t.capacity == 0 {
		return nil, fmt.Errorf("io_uring: %s holds less than one %d-byte block", path, t.lbaSize)
	}
	t.passthrough = di.Kind == blockdev.KindNVMeChar
	if opt.Passthrough && !t.passthrough {
		return nil, fmt.Errorf("io_uring: passthrough needs an NVMe device; %s is a %s", path, di.Kind)
	}

	if opt.Writes && !opt.AllowDestructive && di.Kind != blockdev.KindFile {
		if err := blockdev.CheckWritable(path); err != nil {
			return nil, err
		}
	}

	flags := unix.O_CLOEXEC | unix.O_RDONLY
	if opt.Writes {
		flags = unix.O_CLOEXEC | unix.O_RDWR
	}
	if !t.passthrough {
		flags |= unix.O_DIRECT // the page cache would measure memory, not the device
	}
	t.fd, err = unix.Open(path, flags, 0)
	if err != nil {
		return nil, openError(path, t.passthrough, opt.Writes, err)
	}

	transport := "io_uring"
	if t.passthrough {
		transport = "io_uring-passthru"
		nsid, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(t.fd), nvmeIoctlID, 0)
		if errno != 0 {
			unix.Close(t.fd)
			return nil, fmt.Errorf("io_uring: %s: NVME_IOCTL_ID: %w", path, errno)
		}
		t.nsid = uint32(nsid)
		t.fixedCmd = kernelAtLeast(6, 1)
	}
	t.info = target.Info{
		Name: path, TRID: path, Transport: transport,
		Model: di.Model, Serial: di.Serial, Firmware: di.Firmware,
		NSID: di.NSID, LBASize: t.lbaSize, Capacity: t.capacity, MaxTransfer: di.MaxTransfer,
	}
	if t.passthrough {
		t.info.NSID = t.nsid
	}
	return t, nil
}

// probe sets up and tears down a tiny ring, so that a kernel without io_uring or with
// it disabled is reported when the target opens.
func probe() error {
	r, err := newRing(ringConfig{entries: 2, cqEntries: 4})
	if err != nil {
		return err
	}
	return r.close()
}

// geteuid is a variable so tests can be root and not root.
var geteuid = os.Geteuid

func openError(path string, passthrough, writes bool, err error) error {
	mode := "reading"
	if writes {
		mode = "reading and writing"
	}
	switch {
	case (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) && geteuid() == 0:
		// Root is refused by an immutable or append-only file (chattr +i/+a), a
		// read-only bind, or a security module — never by permissions.
		return fmt.Errorf("io_uring: opening %s for %s: %w, even as root: the file may be immutable or append-only (lsattr shows i or a; chattr -i removes it), or a security module (SELinux, AppArmor) denies it", path, mode, err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("io_uring: opening %s for %s: %w; run as root or get access to the device", path, mode, err)
	case errors.Is(err, unix.EINVAL) && !passthrough:
		return fmt.Errorf("io_uring: opening %s with O_DIRECT: %w: its file system or driver does not support direct I/O (tmpfs on older kernels, some FUSE and network file systems); use a disk-backed file system", path, err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("io_uring: opening %s: %w: another program holds it exclusively", path, err)
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("io_uring: opening %s for writing: %w", path, err)
	}
	return fmt.Errorf("io_uring: opening %s for %s: %w", path, mode, err)
}

func createFile(path string, size int64) error {
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("io_uring: creating %s: %w", path, err)
	}
	err = allocate(fd, path, size)
	unix.Close(fd)
	if err != nil {
		// ENOSPC half-way leaves a partial file that fills the file system: remove it.
		_ = unix.Unlink(path)
	}
	return err
}

func extendFile(path string, size, oldSize int64) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("io_uring: extending %s to %d bytes: %w", path, size, err)
	}
	defer unix.Close(fd)
	if err := allocate(fd, path, size); err != nil {
		// Give back what a partial allocation took: the file keeps its old size and
		// its data (bytes below oldSize are never touched).
		_ = unix.Ftruncate(fd, oldSize)
		return err
	}
	return nil
}

// allocate gives the file real blocks (fallocate) so writes do not also measure block
// allocation; file systems without fallocate get a sparse file.
func allocate(fd int, path string, size int64) error {
	err := unix.Fallocate(fd, 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		err = unix.Ftruncate(fd, size)
	}
	if err != nil {
		return fmt.Errorf("io_uring: sizing %s to %d bytes: %w", path, size, err)
	}
	return nil
}

// genericFor maps a block device path of an NVMe namespace to its generic character
// device.
func genericFor(path string) (string, error) {
	info, err := blockdev.Inspect(path)
	if err != nil {
		return "", fmt.Errorf("io_uring: passthrough: %w", err)
	}
	ng, ok := blockdev.BlockToGeneric(info.Name)
	if !ok {
		return "", fmt.Errorf("io_uring: passthrough needs an NVMe namespace (nvmeXnY or ngXnY); %s is %s", path, info.Name)
	}
	ng = filepath.Join("/dev", ng)
	if _, err := os.Stat(ng); err != nil {
		return "", fmt.Errorf("io_uring: passthrough: %s has no generic character device: %w", path, err)
	}
	return ng, nil
}

// kernelAtLeast reports whether the running kernel's release is at least major.minor.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	return releaseAtLeast(unix.ByteSliceToString(u.Release[:]), major, minor)
}

func releaseAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	minStr := parts[1]
	if i := strings.IndexFunc(minStr, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minStr = minStr[:i]
	}
	min, err2 := strconv.Atoi(minStr)
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && min >= minor
}

// Info describes the device or file.
func (t *Target) Info() target.Info { return t.info }

// Close closes the file; queues must be closed first.
func (t *Target) Close() error {
	if t.fd < 0 {
		return nil
	}
	err := unix.Close(t.fd)
	t.fd = -1
	if err != nil {
		return fmt.Errorf("io_uring: closing %s: %w", t.path, err)
	}
	return nil
}
