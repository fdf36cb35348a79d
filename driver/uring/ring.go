package uring

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is one io_uring instance: the shared SQ and CQ rings and the SQE array, mapped
// from the kernel. Heads and tails the kernel also touches are read and written through
// sync/atomic so the stores are ordered against the SQE/CQE contents.
type ring struct {
	fd       int
	flags    uint32 // IORING_SETUP_* actually in effect
	features uint32
	// refused are the optional IORING_SETUP_* flags the kernel rejected (EINVAL: too
	// old for them), dropped so the ring still works; see setupNote.
	refused uint32

	sqMem, cqMem, sqeMem []byte

	sqHead, sqTail, sqFlags *uint32
	sqMask, sqEntries       uint32
	sqeBase                 unsafe.Pointer
	sqeSize                 uintptr

	cqHead, cqTail    *uint32
	cqMask, cqEntries uint32
	cqeBase           unsafe.Pointer
	cqeSize           uintptr

	// localTail is the SQ tail including entries not yet published to the kernel.
	localTail uint32
	// cqLocalHead is the CQ head: only this side writes it, so it is kept here and
	// stored to the shared ring with a release store, never read back.
	cqLocalHead uint32
	enters      uint64 // io_uring_enter calls, for tests

	// waitArg and waitTS bound blocking waits (IORING_ENTER_EXT_ARG). They live in the
	// ring (heap, which Go never moves) because the kernel reads them by address.
	waitArg getEventsArg
	waitTS  kernelTimespec
}

// ringConfig asks for a ring.
type ringConfig struct {
	entries   uint32 // SQ entries, a power of two
	cqEntries uint32 // CQ entries, a power of two >= entries
	flags     uint32 // IORING_SETUP_* that must be honoured
	optional  uint32 // IORING_SETUP_* to drop when the kernel refuses them
	sqIdleMs  uint32
}

// setupError explains why io_uring_setup failed in the user's terms.
func setupError(err error) error {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("io_uring: not available in this kernel (io_uring_setup: %w); use a kernel built with CONFIG_IO_URING, or the userspace driver", err)
	case errors.Is(err, unix.EPERM):
		setting := "unknown"
		if b, rerr := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); rerr == nil {
			setting = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("io_uring: disabled by sysctl kernel.io_uring_disabled=%s (io_uring_setup: %w); set it to 0, or for 1 add this user to kernel.io_uring_group", setting, err)
	case errors.Is(err, unix.ENOMEM):
		return fmt.Errorf("io_uring: io_uring_setup: %w (raise RLIMIT_MEMLOCK, e.g. ulimit -l unlimited)", err)
	}
	return fmt.Errorf("io_uring: io_uring_setup: %w", err)
}

// newRing sets up and maps a ring. Optional flags the kernel rejects with EINVAL are
// dropped one at a time (newest feature first) so old kernels still work.
func newRing(cfg ringConfig) (*ring, error) {
	var p params
	var fd uintptr
	optional := cfg.optional
	for {
		p = params{SQEntries: cfg.entries, CQEntries: cfg.cqEntries, SQThreadIdle: cfg.sqIdleMs}
		p.Flags = cfg.flags | optional | setupCQSize
		var errno unix.Errno
		fd, _, errno = unix.Syscall(sysIOURingSetup, uintptr(cfg.entries), uintptr(unsafe.Pointer(&p)), 0)
		if errno == 0 {
			break
		}
		if errno == unix.EINVAL && optional != 0 {
			optional &^= highestBit(optional)
			continue
		}
		return nil, setupError(errno)
	}
	r := &ring{fd: int(fd), flags: p.Flags, features: p.Features, refused: cfg.optional &^ optional, sqeSize: 64, cqeSize: 16}
	if p.Flags&setupSQE128 != 0 {
		r.sqeSize = 128
	}
	if p.Flags&setupCQE32 != 0 {
		r.cqeSize = 32
	}
	if err := r.mmap(&p); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func highestBit(v uint32) uint32 {
	b := uint32(1) << 31
	for b != 0 && v&b == 0 {
		b >>= 1
	}
	return b
}

func (r *ring) mmap(p *params) error {
	sqSize := int(p.SQOff.Array) + int(p.SQEntries)*4
	cqSize := int(p.CQOff.CQEs) + int(p.CQEntries)*int(r.cqeSize)
	single := p.Features&featSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	r.sqMem, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("io_uring: mapping the SQ ring (%d bytes): %w", sqSize, err)
	}
	if single {
		r.cqMem = r.sqMem
	} else {
		r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return fmt.Errorf("io_uring: mapping the CQ ring (%d bytes): %w", cqSize, err)
		}
	}
	sqeBytes := int(p.SQEntries) * int(r.sqeSize)
	r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("io_uring: mapping %d SQEs: %w", p.SQEntries, err)
	}

	sq := unsafe.Pointer(&r.sqMem[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.SQOff.Head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.SQOff.Tail))
	r.sqFlags = (*uint32)(unsafe.Add(sq, p.SQOff.Flags))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.SQOff.RingMask))
	r.sqEntries = *(*uint32)(unsafe.Add(sq, p.SQOff.RingEntries))
	r.sqeBase = unsafe.Pointer(&r.sqeMem[0])
	// The SQ array maps ring slots to SQE indexes; nvmeperf keeps it the identity so a
	// slot's SQE is always the one at the same index.
	array := unsafe.Slice((*uint32)(unsafe.Add(sq, p.SQOff.Array)), p.SQEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.localTail = atomic.LoadUint32(r.sqTail)

	cq := unsafe.Pointer(&r.cqMem[0])
	r.cqHead = (*uint32)(unsafe.Add(cq, p.CQOff.Head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.CQOff.Tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.CQOff.RingMask))
	r.cqEntries = *(*uint32)(unsafe.Add(cq, p.CQOff.RingEntries))
	r.cqeBase = unsafe.Add(cq, p.CQOff.CQEs)
	r.cqLocalHead = atomic.LoadUint32(r.cqHead)
	return nil
}

// setupNote says which optional setup flags this kernel refused, "" when none: the
// reason a ring runs without them, for messages and tests.
func (r *ring) setupNote() string {
	if r.refused == 0 {
		return ""
	}
	names := []string{fmt.Sprintf("%#x", r.refused)}
	for _, f := range []struct {
		bit  uint32
		name string
	}{
		{setupSubmitAll, "SUBMIT_ALL"}, {setupCoopTaskrun, "COOP_TASKRUN"}, {setupTaskrunFlag, "TASKRUN_FLAG"},
		{setupSingleIssuer, "SINGLE_ISSUER"}, {setupDeferTaskrun, "DEFER_TASKRUN"},
	} {
		if r.refused&f.bit != 0 {
			names = append(names, f.name)
		}
	}
	return "io_uring_setup refused (EINVAL: kernel too old) optional flags " + strings.Join(names, " ") + "; running without them"
}

// sqSpace is how many SQEs can be filled now.
func (r *ring) sqSpace() uint32 {
	return r.sqEntries - (r.localTail - atomic.LoadUint32(r.sqHead))
}

// nextSQE returns the next free SQE (the caller checked sqSpace) and claims it.
func (r *ring) nextSQE() unsafe.Pointer {
	p := unsafe.Add(r.sqeBase, uintptr(r.localTail&r.sqMask)*r.sqeSize)
	r.localTail++
	return p
}

// publish makes the claimed SQEs visible to the kernel (a release store: the SQE
// contents before the tail).
func (r *ring) publish() {
	storeRelease32(r.sqTail, r.localTail)
}

// cqReady is the number of CQEs waiting (an acquire load of the kernel's tail: the
// CQE contents after it).
func (r *ring) cqReady() uint32 {
	return atomic.LoadUint32(r.cqTail) - r.cqLocalHead
}

// peekCQE returns the CQE at the head; the caller checked cqReady.
func (r *ring) peekCQE() *cqe {
	return (*cqe)(unsafe.Add(r.cqeBase, uintptr(r.cqLocalHead&r.cqMask)*r.cqeSize))
}

// advanceCQ consumes one CQE, letting the kernel reuse its slot (a release store: the
// reads of the CQE before the kernel may overwrite it).
func (r *ring) advanceCQ() {
	r.cqLocalHead++
	storeRelease32(r.cqHead, r.cqLocalHead)
}

// enter calls io_uring_enter. With waitNs > 0 and EXT_ARG support the wait is bounded.
//
// It is a raw system call: the Go scheduler is not told, so it does not hand the
// worker's P to another thread while the kernel waits and take it back afterwards (two
// futex round trips per wait, which cost about a third of the CPU per I/O at QD 32).
// The worker owns its CPU anyway; the cost is that a stop-the-world (rare: the I/O path
// does not allocate) can wait for the bounded wait to end.

func (r *ring) enter(toSubmit, minComplete uint32, flags uint32, waitNs int64) (int, unix.Errno) {
	var arg, argSize uintptr
	if minComplete > 0 && waitNs > 0 && r.features&featExtArg != 0 {
		r.waitTS = kernelTimespec{Sec: waitNs / 1e9, Nsec: waitNs % 1e9}
		r.waitArg = getEventsArg{TS: uint64(uintptr(unsafe.Pointer(&r.waitTS)))}
		flags |= enterExtArg
		arg = uintptr(unsafe.Pointer(&r.waitArg))
		argSize = unsafe.Sizeof(r.waitArg)
	}
	r.enters++
	n, _, errno := unix.RawSyscall6(sysIOURingEnter, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), arg, argSize)
	return int(n), errno
}

// register calls io_uring_register.
func (r *ring) register(op uint32, arg unsafe.Pointer, n int) error {
	_, _, errno := unix.Syscall6(sysIOURingRegister, uintptr(r.fd), uintptr(op), uintptr(arg), uintptr(n), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func (r *ring) close() error {
	var first error
	maps := [][]byte{r.sqeMem, r.sqMem}
	if len(r.cqMem) > 0 && (len(r.sqMem) == 0 || &r.cqMem[0] != &r.sqMem[0]) {
		maps = append(maps, r.cqMem) // a separate CQ mapping (no IORING_FEAT_SINGLE_MMAP)
	}
	for _, m := range maps {
		if len(m) == 0 {
			continue
		}
		if err := unix.Munmap(m); err != nil && first == nil {
			first = fmt.Errorf("io_uring: unmapping ring: %w", err)
		}
	}
	r.sqeMem, r.cqMem, r.sqMem = nil, nil, nil
	if r.fd >= 0 {
		if err := unix.Close(r.fd); err != nil && first == nil {
			first = fmt.Errorf("io_uring: closing ring: %w", err)
		}
		r.fd = -1
	}
	return first
}
