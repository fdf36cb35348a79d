package uring

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

const (
	maxRingEntries = 32768 // IORING_MAX_ENTRIES
	// waitTimeout bounds a blocking wait in Poll so a device that stops answering still
	// lets the workload notice its deadline.
	waitTimeout = 10e6 // nanoseconds
	sqPollIdle  = 1000 // milliseconds the SQPOLL thread spins before sleeping
	// firstSubmitChunk is how many SQEs the per-poll doorbell lets wait before Submit
	// hands them to the kernel; after each hand-over the next chunk doubles (2, 4, 8, ...)
	// until the next Poll starts again at 2. An io_uring_enter prepares its SQEs one after
	// another (block layer, I/O scheduler, under a plug when there are more than 2) and
	// the device sees none of them until the last is done: one enter for a whole poll's
	// resubmissions (about 29 at QD 32) held the first ones back and put the run into
	// lock-step, 10% fewer IOPS on a virtio disk. A first chunk of 2 is unplugged and
	// reaches the device at once; the larger later ones keep it fed while costing a
	// few system calls per poll instead of one per 2 I/Os (docs/io_uring.md).
	firstSubmitChunk = 2
)

// queue is one io_uring ring driving the target. It is owned by one goroutine, locked
// to its OS thread for the queue's life (IORING_SETUP_SINGLE_ISSUER ties the ring to it).
type queue struct {
	t       *Target
	r       *ring
	handler target.Handler

	ioSize   uint32
	lbaShift uint8
	bufMem   []byte
	bufs     [][]byte
	bufAddr  []uint64

	fileFD    int32 // registered index 0, or the raw fd when registration failed
	fileFlags uint8
	fixedBufs bool

	// slots maps user_data to the request in flight; free is a stack of unused slots.
	slots []*target.Request
	free  []uint32

	// backlog holds submissions that found no SQE or slot free, in order.
	backlog     []*target.Request
	backlogHead int
	backlogLen  int

	pending     uint32 // SQEs filled but not yet handed to the kernel
	chunk       uint32 // per-poll doorbell: SQEs pending that make Submit enter the kernel
	doorbell    target.DoorbellMode
	doorbellN   uint32
	maxComplete int
	inflight    int // in the kernel's hands (slots used)
	busyPoll    bool
	sqPoll      bool
	getEvents   bool // every enter must reap: DEFER_TASKRUN runs completion work only there, IOPOLL polls only there
	// taskrunFlag: the kernel sets IORING_SQ_TASKRUN when completion work waits for
	// this thread (COOP_TASKRUN with TASKRUN_FLAG), so a busy-polling Poll with nothing
	// to submit enters the kernel only then. Without it, such a Poll enters whenever
	// I/O is in flight and no CQE is ready, as before.
	taskrunFlag bool

	thread *threadQueues
	failed error
	closed bool
}

var _ target.Queue = (*queue)(nil)

// threadQueues counts the io_uring queues open on one OS thread: a Poll may block in the
// kernel only when its queue is the thread's only one, or it would delay the others.
type threadQueues struct {
	tid int
	n   atomic.Int32
}

var (
	threadsMu sync.Mutex
	threads   = map[int]*threadQueues{}
)

func joinThread() *threadQueues {
	tid := unix.Gettid()
	threadsMu.Lock()
	defer threadsMu.Unlock()
	tq := threads[tid]
	if tq == nil {
		tq = &threadQueues{tid: tid}
		threads[tid] = tq
	}
	tq.n.Add(1)
	return tq
}

func (tq *threadQueues) leave() {
	threadsMu.Lock()
	defer threadsMu.Unlock()
	if tq.n.Add(-1) == 0 {
		delete(threads, tq.tid)
	}
}

func nextPow2(v int) uint32 {
	p := uint32(1)
	for int(p) < v {
		p <<= 1
	}
	return p
}

// OpenQueue sets up a ring for the calling goroutine, which it locks to its OS thread
// until Close.
func (t *Target) OpenQueue(cfg target.QueueConfig) (target.Queue, error) {
	if t.fd < 0 {
		return nil, fmt.Errorf("io_uring: %s: target is closed", t.path)
	}
	if err := t.checkConfig(&cfg); err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	q, err := t.newQueue(cfg)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	return q, nil
}

func (t *Target) checkConfig(cfg *target.QueueConfig) error {
	switch {
	case cfg.Depth < 1 || cfg.Depth > maxRingEntries:
		return fmt.Errorf("io_uring: queue depth %d out of range; accepted 1..%d", cfg.Depth, maxRingEntries)
	case cfg.QueueSize < 0 || cfg.QueueSize > maxRingEntries:
		return fmt.Errorf("io_uring: queue size %d out of range; accepted 0 (default) or 1..%d", cfg.QueueSize, maxRingEntries)
	case cfg.IOSize <= 0 || cfg.IOSize > 1<<30:
		return fmt.Errorf("io_uring: I/O size %d out of range; accepted 1 byte to 1 GiB", cfg.IOSize)
	case uint32(cfg.IOSize)%t.lbaSize != 0:
		return fmt.Errorf("io_uring: I/O size %d is not a multiple of %s's logical block size %d", cfg.IOSize, t.path, t.lbaSize)
	case t.passthrough && cfg.IOSize/int(t.lbaSize) > 65536:
		return fmt.Errorf("io_uring: I/O size %d is %d blocks of %d bytes; an NVMe command carries at most 65536", cfg.IOSize, cfg.IOSize/int(t.lbaSize), t.lbaSize)
	case cfg.Buffers < 0 || cfg.Buffers > 1<<14:
		return fmt.Errorf("io_uring: %d buffers out of range; accepted 0 (= depth) or 1..16384 (the registered buffer limit)", cfg.Buffers)
	case cfg.BufferOffset < 0 || cfg.BufferOffset >= 4096:
		return fmt.Errorf("io_uring: buffer offset %d out of range; accepted 0..4095", cfg.BufferOffset)
	case cfg.Doorbell > target.DoorbellPerCommand:
		return fmt.Errorf("io_uring: doorbell mode %v unknown; accepted per-poll, every-n, per-command", cfg.Doorbell)
	case cfg.Doorbell == target.DoorbellEveryN && cfg.DoorbellN < 1:
		return fmt.Errorf("io_uring: doorbell every %d submissions; N must be at least 1", cfg.DoorbellN)
	case cfg.MaxCompletions < 0:
		return fmt.Errorf("io_uring: max completions %d is negative; 0 means no limit", cfg.MaxCompletions)
	case cfg.Handler == nil:
		return fmt.Errorf("io_uring: queue config has no completion handler")
	}
	if cfg.Buffers == 0 {
		cfg.Buffers = cfg.Depth
	}
	return nil
}

func (t *Target) newQueue(cfg target.QueueConfig) (*queue, error) {
	// The ring holds QueueSize entries when asked (a smaller ring than the depth
	// exercises the software queue), else the depth.
	entries := nextPow2(cfg.Depth)
	if cfg.QueueSize > 0 {
		entries = nextPow2(cfg.QueueSize)
	}
	rc := ringConfig{entries: entries, cqEntries: 2 * entries}
	if t.opt.IOPoll {
		rc.flags |= setupIOPoll
	}
	if t.opt.SQPoll {
		rc.flags |= setupSQPoll
		rc.sqIdleMs = sqPollIdle
	} else {
		// One thread submits and reaps, and completion task work need not interrupt
		// it (COOP_TASKRUN, Linux 5.19; SINGLE_ISSUER, 6.0). DEFER_TASKRUN is left off on purpose: it holds finished
		// I/Os back until the next io_uring_enter with GETEVENTS, which measured 15%
		// fewer IOPS at QD 32 and more CPU per I/O (bench/uring_vs_fio.sh).
		rc.optional = setupCoopTaskrun | setupTaskrunFlag | setupSingleIssuer
	}
	rc.optional |= setupSubmitAll
	if t.passthrough {
		rc.flags |= setupSQE128 | setupCQE32
	}
	r, err := newRing(rc)
	if err != nil {
		return nil, fmt.Errorf("%w (ring of %d entries for %s)", err, entries, t.path)
	}
	q := &queue{
		t: t, r: r, handler: cfg.Handler,
		ioSize:      uint32(cfg.IOSize),
		doorbell:    cfg.Doorbell,
		doorbellN:   uint32(cfg.DoorbellN),
		maxComplete: cfg.MaxCompletions,
		chunk:       firstSubmitChunk,
		busyPoll:    t.opt.BusyPoll,
		sqPoll:      r.flags&setupSQPoll != 0,
		getEvents:   r.flags&(setupDeferTaskrun|setupIOPoll) != 0,
		taskrunFlag: r.flags&(setupCoopTaskrun|setupTaskrunFlag) == setupCoopTaskrun|setupTaskrunFlag,
	}
	for s := t.lbaSize; s > 1; s >>= 1 {
		q.lbaShift++
	}
	if q.maxComplete == 0 {
		q.maxComplete = int(r.cqEntries)
	}
	q.slots = make([]*target.Request, r.cqEntries)
	q.free = make([]uint32, r.cqEntries)
	for i := range q.free {
		q.free[i] = uint32(len(q.free) - 1 - i)
	}
	q.backlog = make([]*target.Request, max(int(r.cqEntries), cfg.Depth))
	if err := q.setupBuffers(cfg); err != nil {
		q.release()
		return nil, err
	}
	q.setupFile()
	q.thread = joinThread()
	return q, nil
}

// setupBuffers maps the queue's buffers off the Go heap, each starting BufferOffset
// past a page, and registers them as fixed buffers so the kernel pins them once.
func (q *queue) setupBuffers(cfg target.QueueConfig) error {
	stride := (cfg.BufferOffset + cfg.IOSize + 4095) &^ 4095
	mem, err := unix.Mmap(-1, 0, stride*cfg.Buffers, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("io_uring: mapping %d buffers of %d bytes: %w", cfg.Buffers, stride, err)
	}
	q.bufMem = mem
	q.bufs = make([][]byte, cfg.Buffers)
	q.bufAddr = make([]uint64, cfg.Buffers)
	iovs := make([]unix.Iovec, cfg.Buffers)
	for i := range q.bufs {
		b := mem[i*stride+cfg.BufferOffset : i*stride+cfg.BufferOffset+cfg.IOSize : i*stride+cfg.BufferOffset+cfg.IOSize]
		q.bufs[i] = b
		q.bufAddr[i] = uint64(uintptr(unsafe.Pointer(&b[0])))
		iovs[i].Base = &b[0]
		iovs[i].SetLen(len(b))
	}
	// Registration pins the pages and spares the kernel a get_user_pages per I/O.
	// Without it (RLIMIT_MEMLOCK, old kernels) I/O still works with plain addresses.
	q.fixedBufs = q.r.register(registerBuffers, unsafe.Pointer(&iovs[0]), len(iovs)) == nil
	if q.t.passthrough && !q.t.fixedCmd {
		q.fixedBufs = false
	}
	return nil
}

// setupFile registers the file so each I/O skips the fd table lookup and reference count.
func (q *queue) setupFile() {
	fds := [1]int32{int32(q.t.fd)}
	if q.r.register(registerFiles, unsafe.Pointer(&fds[0]), 1) == nil {
		q.fileFD, q.fileFlags = 0, sqeFixedFile
		return
	}
	q.fileFD, q.fileFlags = int32(q.t.fd), 0
}

// Buffer returns the memory of buffer i.
func (q *queue) Buffer(i int) []byte { return q.bufs[i] }

// Outstanding counts submitted requests not yet completed, queued ones included.
func (q *queue) Outstanding() int { return q.inflight + q.backlogLen }

// Submit fills an SQE for r, or queues r in software when the ring or its slots are
// full. Depending on the doorbell mode it also hands the SQEs to the kernel.
func (q *queue) Submit(r *target.Request) error {
	if q.failed != nil {
		return q.failed
	}
	if err := q.check(r); err != nil {
		return err
	}
	if q.backlogLen > 0 || !q.canStart() {
		if q.backlogLen == len(q.backlog) {
			return fmt.Errorf("io_uring: %s: %d requests already outstanding; the queue holds at most %d", q.t.path, q.Outstanding(), len(q.slots)+len(q.backlog))
		}
		q.backlog[(q.backlogHead+q.backlogLen)%len(q.backlog)] = r
		q.backlogLen++
		return nil
	}
	q.start(r)
	switch q.doorbell {
	case target.DoorbellPerCommand:
		return q.flush()
	case target.DoorbellEveryN:
		if q.pending >= q.doorbellN {
			return q.flush()
		}
	case target.DoorbellPerPoll:
		if q.pending >= q.chunk && !q.sqPoll {
			q.chunk = min(2*q.chunk, maxRingEntries)
			return q.flush()
		}
	}
	return nil
}

// canStart reports whether a slot and an SQE are free, handing filled SQEs to the
// kernel first when only the SQ is full.
func (q *queue) canStart() bool {
	if len(q.free) == 0 {
		return false
	}
	if q.r.sqSpace() == 0 {
		if q.flush() != nil {
			return false
		}
		return q.r.sqSpace() > 0
	}
	return true
}

func (q *queue) check(r *target.Request) error {
	if r.Buf < 0 || r.Buf >= len(q.bufs) {
		return fmt.Errorf("io_uring: request buffer %d out of range; the queue has %d", r.Buf, len(q.bufs))
	}
	mask := uint64(q.t.lbaSize - 1)
	if r.Length == 0 || r.Length > q.ioSize || uint64(r.Length)&mask != 0 {
		return fmt.Errorf("io_uring: %s of %d bytes: length must be a multiple of the logical block size %d, from %d to the I/O size %d", r.Op, r.Length, q.t.lbaSize, q.t.lbaSize, q.ioSize)
	}
	if r.Offset&mask != 0 {
		return fmt.Errorf("io_uring: %s at offset %d: offset is not a multiple of the logical block size %d", r.Op, r.Offset, q.t.lbaSize)
	}
	if r.Offset+uint64(r.Length) > q.t.capacity || r.Offset+uint64(r.Length) < r.Offset {
		return fmt.Errorf("io_uring: %s at offset %d len %d: past the end of %s (%d bytes)", r.Op, r.Offset, r.Length, q.t.path, q.t.capacity)
	}
	if r.Op != target.OpRead && r.Op != target.OpWrite {
		return fmt.Errorf("io_uring: operation %v not supported; read and write are", r.Op)
	}
	if r.Op == target.OpWrite && !q.t.opt.Writes {
		return fmt.Errorf("io_uring: write at offset %d: %s was opened read-only (Options.Writes is false)", r.Offset, q.t.path)
	}
	return nil
}

// start fills the next SQE for r; the caller checked canStart.
func (q *queue) start(r *target.Request) {
	slot := q.free[len(q.free)-1]
	q.free = q.free[:len(q.free)-1]
	q.slots[slot] = r
	q.inflight++
	q.pending++
	p := q.r.nextSQE()
	if q.t.passthrough {
		s := (*sqe128)(p)
		*s = sqe128{}
		s.Opcode = opURingCmd
		s.Flags = q.fileFlags
		s.FD = q.fileFD
		s.setCmdOp(nvmeURingCmdIO)
		s.UserData = uint64(slot)
		if q.fixedBufs {
			s.OpFlags = uringCmdFixed
			s.BufIndex = uint16(r.Buf)
		}
		*s.nvmeCmd() = nvmeReadWrite(r.Op, q.t.nsid, q.lbaShift, r.Offset, r.Length, q.bufAddr[r.Buf])
	} else {
		s := (*sqe)(p)
		var op uint8
		var bufIndex uint16
		switch {
		case q.fixedBufs && r.Op == target.OpWrite:
			op, bufIndex = opWriteFixed, uint16(r.Buf)
		case q.fixedBufs:
			op, bufIndex = opReadFixed, uint16(r.Buf)
		case r.Op == target.OpWrite:
			op = opWrite
		default:
			op = opRead
		}
		*s = sqe{Opcode: op, Flags: q.fileFlags, FD: q.fileFD, Off: r.Offset, Addr: q.bufAddr[r.Buf],
			Len: r.Length, UserData: uint64(slot), BufIndex: bufIndex}
	}
	if q.sqPoll {
		q.r.publish() // the kernel thread may pick it up at once
	}
}

// nvmeReadWrite encodes an NVMe Read or Write of length bytes at byte offset for the
// generic character device: SLBA in CDW10/11, the 0's based block count in CDW12.
func nvmeReadWrite(op target.Op, nsid uint32, lbaShift uint8, offset uint64, length uint32, addr uint64) nvmeURingCmd {
	opc := spec.IORead
	if op == target.OpWrite {
		opc = spec.IOWrite
	}
	slba := offset >> lbaShift
	nlb := length >> lbaShift
	return nvmeURingCmd{
		Opcode:  uint8(opc),
		NSID:    nsid,
		Addr:    addr,
		DataLen: length,
		CDW10:   uint32(slba),
		CDW11:   uint32(slba >> 32),
		CDW12:   (nlb - 1) & 0xFFFF,
	}
}

// flush hands the filled SQEs to the kernel.
func (q *queue) flush() error {
	q.r.publish()
	if q.sqPoll {
		q.pending = 0
		if atomic.LoadUint32(q.r.sqFlags)&sqNeedWakeup != 0 {
			q.r.enter(0, 0, enterSQWakeup, 0)
		}
		return nil
	}
	if q.pending == 0 {
		return nil
	}
	var flags uint32
	if q.getEvents {
		flags = enterGetEvents
	}
	n, errno := q.r.enter(q.pending, 0, flags, 0)
	return q.entered(n, errno)
}

// entered accounts for io_uring_enter's result: n SQEs consumed, or a failure. Busy
// and interrupted calls are retried by the next Poll.
func (q *queue) entered(n int, errno unix.Errno) error {
	if errno == 0 {
		q.pending -= min(uint32(n), q.pending)
		return nil
	}
	switch errno {
	case unix.EINTR, unix.EAGAIN, unix.EBUSY, unix.ETIME:
		return nil
	}
	return q.fail(fmt.Errorf("io_uring: %s: io_uring_enter: %w", q.t.path, errno))
}

// Poll hands pending SQEs to the kernel, waits for a completion when there is nothing
// to reap (unless BusyPoll or other io_uring queues share the thread), and reaps up to
// MaxCompletions, calling the Handler for each.
func (q *queue) Poll() (int, error) {
	if q.failed != nil {
		return 0, q.failed
	}
	q.drainBacklog()
	ready := q.r.cqReady()
	wait := ready == 0 && q.inflight > 0 && !q.busyPoll && q.thread.n.Load() == 1
	if q.sqPoll {
		q.pending = 0
		var flags uint32
		if atomic.LoadUint32(q.r.sqFlags)&sqNeedWakeup != 0 {
			flags |= enterSQWakeup
		}
		var minComplete uint32
		if wait {
			flags |= enterGetEvents
			minComplete = 1
		}
		if flags != 0 {
			n, errno := q.r.enter(0, minComplete, flags, waitTimeout)
			if err := q.entered(n, errno); err != nil {
				return 0, err
			}
		}
	} else if q.pending > 0 || wait || (ready == 0 && q.inflight > 0 && q.mustEnterToReap()) {
		// One io_uring_enter both submits and (when it waits or must) reaps; none at
		// all when nothing is pending and the kernel has no completion work for us.
		q.r.publish()
		var flags, minComplete uint32
		if q.getEvents || wait || q.taskrunFlag {
			flags = enterGetEvents
		}
		if wait {
			minComplete = 1
		}
		n, errno := q.r.enter(q.pending, minComplete, flags, waitTimeout)
		if err := q.entered(n, errno); err != nil {
			return 0, err
		}
	}
	q.chunk = firstSubmitChunk
	done := q.reap()
	q.drainBacklog()
	return done, nil
}

// mustEnterToReap reports whether a Poll that has nothing to submit and will not wait
// still has to enter the kernel for completions to appear: always with IOPOLL or
// DEFER_TASKRUN; with TASKRUN_FLAG only when the kernel says completion work waits;
// without it (older kernels) always, as the kernel cannot tell.
func (q *queue) mustEnterToReap() bool {
	if q.getEvents || !q.taskrunFlag {
		return true
	}
	return atomic.LoadUint32(q.r.sqFlags)&sqTaskrun != 0
}

// reap consumes up to maxComplete CQEs. Each CQE is released to the kernel before its
// handler runs, so a resubmission from the handler always finds CQ room.
func (q *queue) reap() int {
	n := 0
	for n < q.maxComplete && q.r.cqReady() > 0 {
		c := q.r.peekCQE()
		slot, res := uint32(c.UserData), c.Res
		q.r.advanceCQ()
		if slot >= uint32(len(q.slots)) || q.slots[slot] == nil {
			continue // not ours (cannot happen: every SQE carries a slot)
		}
		r := q.slots[slot]
		q.slots[slot] = nil
		q.free = append(q.free, slot)
		q.inflight--
		r.Err = nil
		if res != int32(r.Length) || q.t.passthrough {
			r.Err = q.result(r, res)
		}
		n++
		q.handler.Complete(r)
	}
	return n
}

// drainBacklog moves software-queued requests into the ring while room lasts.
func (q *queue) drainBacklog() {
	for q.backlogLen > 0 && q.canStart() {
		r := q.backlog[q.backlogHead]
		q.backlog[q.backlogHead] = nil
		q.backlogHead = (q.backlogHead + 1) % len(q.backlog)
		q.backlogLen--
		q.start(r)
	}
}

// IOError is a request that failed: the kernel's errno, an NVMe status (passthrough),
// or a short transfer.
type IOError struct {
	Passthrough bool
	Op          target.Op
	Offset      uint64
	Length      uint32
	Errno       unix.Errno  // non-zero: the kernel failed the request
	Status      spec.Status // non-zero: the NVMe command completed with this status
	Transferred int32       // for a short transfer: bytes moved
}

func (e *IOError) Error() string {
	prefix := "io_uring"
	if e.Passthrough {
		prefix = "io_uring-passthru"
	}
	var why string
	switch {
	case e.Errno != 0:
		why = e.Errno.Error()
	case e.Status != 0:
		why = e.Status.String()
	default:
		why = fmt.Sprintf("short transfer of %d bytes", e.Transferred)
	}
	return fmt.Sprintf("%s: %s at offset %d len %d: %s", prefix, e.Op, e.Offset, e.Length, why)
}

// Unwrap gives the errno, so errors.Is(err, unix.EIO) works.
func (e *IOError) Unwrap() error {
	if e.Errno != 0 {
		return e.Errno
	}
	return nil
}

// result turns a CQE result into the request's error (nil for success).
func (q *queue) result(r *target.Request, res int32) error {
	if q.t.passthrough && res == 0 {
		return nil
	}
	e := &IOError{Passthrough: q.t.passthrough, Op: r.Op, Offset: r.Offset, Length: r.Length}
	switch {
	case res < 0:
		e.Errno = unix.Errno(-res)
	case q.t.passthrough:
		e.Status = spec.Status(uint16(res) & 0x7FFF)
	default:
		e.Transferred = res
	}
	return e
}

// fail marks the ring broken and completes every outstanding request with err.
func (q *queue) fail(err error) error {
	q.failed = err
	for i, r := range q.slots {
		if r == nil {
			continue
		}
		q.slots[i] = nil
		q.free = append(q.free, uint32(i))
		q.inflight--
		r.Err = err
		q.handler.Complete(r)
	}
	for q.backlogLen > 0 {
		r := q.backlog[q.backlogHead]
		q.backlog[q.backlogHead] = nil
		q.backlogHead = (q.backlogHead + 1) % len(q.backlog)
		q.backlogLen--
		r.Err = err
		q.handler.Complete(r)
	}
	return err
}

// Close tears down the ring and the buffers. Requests still in flight are abandoned;
// their pages stay pinned by the kernel (registration or the direct I/O itself) until
// they finish, so unmapping cannot let the device write into reused memory.
func (q *queue) Close() error {
	if q.closed {
		return nil
	}
	q.closed = true
	err := q.release()
	if q.thread != nil {
		q.thread.leave()
	}
	runtime.UnlockOSThread()
	return err
}

func (q *queue) release() error {
	var errs []error
	if q.r != nil {
		errs = append(errs, q.r.close())
	}
	if q.bufMem != nil {
		if err := unix.Munmap(q.bufMem); err != nil {
			errs = append(errs, fmt.Errorf("io_uring: unmapping buffers: %w", err))
		}
		q.bufMem = nil
	}
	return errors.Join(errs...)
}

// SetupNote says which optional io_uring setup flags the kernel refused for this
// queue's ring ("" when it took them all), the reason it runs without them.
func (q *queue) SetupNote() string { return q.r.setupNote() }
