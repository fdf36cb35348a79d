package nvme

import (
	"fmt"
	"math/bits"
	"runtime/debug"
	"time"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// Callback is told when a command completes. cpl points into the completion queue and
// is valid only during the call. Callbacks run from Poll on the queue pair's goroutine
// and may submit new commands. Implementations are long-lived values (a worker, a
// preallocated context), so passing one costs no allocation.
type Callback interface {
	CommandDone(arg any, cpl *spec.Completion)
}

// QPairOptions shape an I/O queue pair.
type QPairOptions struct {
	// Entries is the SQ and CQ size; 0 means 256. It is clamped to CAP.MQES+1 (up to
	// 65536).
	Entries int
	// Requests is how many commands may be outstanding, counting those waiting in the
	// software queue for a free SQ slot; 0 means Entries-1.
	Requests int
	// MaxTransfer is the largest data transfer in bytes; it sizes each request's PRP
	// list. 0 means the controller's limit.
	MaxTransfer int
	// Doorbell selects when the SQ tail doorbell is rung; DoorbellN applies to
	// target.DoorbellEveryN.
	Doorbell  target.DoorbellMode
	DoorbellN int
	// MaxCompletions is the most completions one Poll processes; 0 means no limit.
	MaxCompletions int
}

// request is one command slot. Its index is the low bits of the command identifier, so
// a completion finds its request without a lookup structure; the high bits count the
// slot's uses (as Linux's command generation does), so a late duplicate completion of
// an earlier command in the slot is told from the current one's.
type request struct {
	cmd    spec.Command
	cb     Callback
	arg    any
	prp    bus.Buffer // this request's PRP list pages
	cid    uint16     // index | generation<<QPair.cidShift
	active bool       // submitted, not completed
	placed bool       // in the SQ (not in the software queue), not completed

	tick, abortTick uint32 // timeout.go: submission tick; tick of its Abort, 0 = none
	retries         uint8  // retry.go: times this command was resubmitted
}

// healthCheckInterval is how long a queue pair with commands outstanding waits for a
// completion before it reads CSTS to see whether the controller died.
const healthCheckInterval = 200 * time.Millisecond

// QPair is an I/O (or the admin) submission/completion queue pair. It is owned by
// exactly one goroutine: no method is safe for concurrent use.
type QPair struct {
	ctrl *Controller
	id   uint16
	size uint32 // entries in SQ and CQ: 2 to 65536

	sqMem, cqMem, prpMem bus.Buffer   // views aligned to the controller's memory page
	raw                  []bus.Buffer // the allocations behind them, to free
	sq                   []spec.Command
	cq                   []spec.Completion

	sqTail, cqHead uint32
	// sqHead is the controller's SQ head as its completions report it (SQHD): the SQ
	// slots from sqHead up to sqTail are not yet fetched and must not be overwritten.
	sqHead       uint32
	phase        uint32 // phase tag value that marks a new completion
	active       int    // commands placed in the SQ and not yet completed (by CID)
	lastRungTail uint32
	sinceRing    int

	sqDB, cqDB       *uint32 // direct doorbell pointers when registers are MMIO
	sqDBOff, cqDBOff uint32
	// Shadow doorbell and EventIdx slots (shadowdb.go); nil when not in use.
	sqShadow, sqEvent, cqShadow, cqEvent *uint32
	lastCQHead                           uint32 // CQ head last stored in the shadow

	reqs     []request
	cidShift uint     // bits of the CID that hold the request index
	cidMaskV uint16   // the CID bits that hold the request index
	genStep  uint16   // 1<<cidShift: adds one to a CID's generation (0 when there is none)
	free     []uint16 // stack of free request indexes
	swq      []uint16 // FIFO ring of requests waiting for an SQ slot
	swqHead  int
	swqCount int

	doorbell       target.DoorbellMode
	doorbellN      int
	maxCompletions int
	maxTransfer    int
	idlePolls      uint32
	idleSince      time.Time // start of the current run of empty polls (sampled)

	failed error
	stats  QPairStats

	// fabric carries the queue pair on a message-based transport (fabric.go); nil for
	// the memory rings above.
	fabric    FabricQueue
	completer fabricCompleter
	fab       fabricQueueState // fabric.go, fabricrecovery.go

	sqInCMB     bool   // cmb.go: the SQ is in the controller memory buffer
	cmbFallback string // cmb.go: why it is not, when the CMB holds SQs

	tmo   timeoutState   // timeout.go
	rcv   reconnectState // recovery.go
	retry retryState     // retry.go
}

// QPairStats counts what a queue pair did; handy to show batching at work.
type QPairStats struct {
	Submitted    uint64
	Completed    uint64
	SQDoorbells  uint64
	CQDoorbells  uint64
	SoftQueued   uint64 // submissions that waited in the software queue
	SpuriousCIDs uint64 // completions naming no outstanding command (or another SQ)
	BadSQHeads   uint64 // completions whose SQHD lies outside the unfetched part of the SQ
	FailedPolls  uint64
	// Shadow doorbells (shadowdb.go): SQDoorbells and CQDoorbells count real MMIO
	// writes only; these count the shadow updates and the MMIO writes they made
	// unnecessary.
	SQShadowUpdates uint64
	CQShadowUpdates uint64
	ShadowSkips     uint64
}

func newQPair(c *Controller, id uint16, opts QPairOptions) (*QPair, error) {
	entries := opts.Entries
	if entries == 0 {
		entries = 256
	}
	if max := int(c.cap.MQES()) + 1; entries > max && (c.fabric == nil || id != 0) {
		entries = max // a fabric's admin queue connects before CAP can be read
	}
	if entries < 2 {
		return nil, fmt.Errorf("nvme: queue of %d entries is too small (need at least 2)", entries)
	}
	if entries > 65536 {
		entries = 65536 // QSIZE is a 16-bit 0's based field
	}
	nreq := opts.Requests
	if nreq <= 0 {
		nreq = entries - 1
	}
	if nreq > 65535 {
		return nil, fmt.Errorf("nvme: %d outstanding requests asked for; at most 65535 fit in command identifiers", nreq)
	}
	maxXfer := opts.MaxTransfer
	if maxXfer <= 0 || (c.maxTransfer > 0 && maxXfer > c.maxTransfer) {
		maxXfer = c.maxTransfer
	}
	q := &QPair{
		ctrl: c, id: id, size: uint32(entries), phase: 1,
		doorbell: opts.Doorbell, doorbellN: opts.DoorbellN, maxCompletions: opts.MaxCompletions,
		maxTransfer: maxXfer,
	}
	if q.doorbell == target.DoorbellEveryN && q.doorbellN <= 0 {
		return nil, fmt.Errorf("nvme: doorbell every N needs N ≥ 1, got %d", q.doorbellN)
	}
	if c.fabric != nil {
		if err := q.connectFabric(nreq); err != nil {
			return nil, err
		}
		return q, nil
	}
	// Queues and PRP list pages start on a controller memory page boundary.
	var err error
	if q.sqMem, err = q.allocSQ(entries * spec.SQESize); err != nil { // cmb.go
		return nil, fmt.Errorf("nvme: allocating SQ %d: %w", id, err)
	}
	if q.cqMem, err = q.alloc(entries * spec.CQESize); err != nil {
		q.freeMemory(false)
		return nil, fmt.Errorf("nvme: allocating CQ %d: %w", id, err)
	}
	ps := c.pageSize
	listPages := prpListPages(maxXfer, ps)
	if listPages > 0 {
		if q.prpMem, err = q.alloc(nreq * listPages * ps); err != nil {
			q.freeMemory(false)
			return nil, fmt.Errorf("nvme: allocating PRP lists for %d requests: %w", nreq, err)
		}
	}
	q.sq = unsafe.Slice((*spec.Command)(unsafe.Pointer(&q.sqMem.Bytes[0])), entries)
	q.cq = unsafe.Slice((*spec.Completion)(unsafe.Pointer(&q.cqMem.Bytes[0])), entries)
	q.reqs = make([]request, nreq)
	q.setCIDLayout(nreq)
	q.free = make([]uint16, nreq)
	q.swq = make([]uint16, nreq)
	for i := range q.reqs {
		q.free[i] = uint16(nreq - 1 - i) // pop order 0, 1, 2...
		if listPages > 0 {
			q.reqs[i].prp = q.prpMem.Slice(i*listPages*ps, listPages*ps)
		}
	}
	q.sqDBOff = spec.SQTailDoorbell(id, c.cap.DSTRD())
	q.cqDBOff = spec.CQHeadDoorbell(id, c.cap.DSTRD())
	if m, ok := c.regs.(*bus.MMIO); ok {
		q.sqDB, q.cqDB = m.Reg32(q.sqDBOff), m.Reg32(q.cqDBOff)
	}
	q.initShadow()   // shadowdb.go
	q.initTimeout()  // timeout.go
	q.initRecovery() // recovery.go
	q.initRetry()    // retry.go
	return q, nil
}

func (q *QPair) alloc(size int) (bus.Buffer, error) {
	b, raw, err := q.ctrl.allocDMA(size)
	if err != nil {
		return bus.Buffer{}, err
	}
	q.raw = append(q.raw, raw)
	return b, nil
}

// freeMemory releases the queue pair's DMA memory, or hands it to the controller to
// free once it is disabled when the controller may still reach it (see freeDMA).
func (q *QPair) freeMemory(deviceMayUse bool) {
	q.stopConnect() // fabricrecovery.go: a reconnect under way is called off
	if q.fabric != nil {
		_ = q.fabric.Close() // outstanding commands are abandoned with the connection
		q.fabric = nil
	}
	for _, b := range q.raw {
		q.ctrl.freeDMA(b, deviceMayUse)
	}
	q.raw = nil
	q.freeSQ(deviceMayUse) // cmb.go
	q.sqMem, q.cqMem, q.prpMem = bus.Buffer{}, bus.Buffer{}, bus.Buffer{}
}

// ID is the queue identifier (0 for the admin queue).
func (q *QPair) ID() uint16 { return q.id }

// Entries is the SQ/CQ size in entries.
func (q *QPair) Entries() int { return int(q.size) }

// Outstanding is the number of submitted commands not yet completed, software-queued
// ones included.
func (q *QPair) Outstanding() int { return len(q.reqs) - len(q.free) }

// Capacity is the number of commands that can be outstanding at once.
func (q *QPair) Capacity() int { return len(q.reqs) }

// Stats returns the queue pair's counters.
func (q *QPair) Stats() QPairStats { return q.stats }

// MaxTransfer is the largest data transfer a command on this queue pair can carry.
func (q *QPair) MaxTransfer() int { return q.maxTransfer }

// Err is the failure that stopped the queue pair, if any.
func (q *QPair) Err() error { return q.failed }

// Submit sends cmd with data (which may be empty) and calls cb.CommandDone(arg, ...)
// from a later Poll. The command identifier and data pointer fields of cmd are filled
// in by the queue pair; cmd itself is copied and may be reused at once. When the SQ is
// full the command waits in a software queue. Submit never calls cb.
func (q *QPair) Submit(cmd *spec.Command, data bus.Buffer, cb Callback, arg any) error {
	if q.failed != nil {
		return q.failed
	}
	if data.Len() > q.maxTransfer && q.maxTransfer > 0 {
		return fmt.Errorf("nvme: transfer of %d bytes exceeds the %d-byte limit (MDTS)", data.Len(), q.maxTransfer)
	}
	n := len(q.free)
	if n == 0 {
		return ErrQueueFull
	}
	idx := q.free[n-1]
	r := &q.reqs[idx]
	// The request keeps the command for retries and error messages; the SQ slot gets it
	// from cmd, not from r.cmd (see placeFrom).
	r.cmd = *cmd
	r.cid = q.nextCID(r.cid, idx)
	r.cmd.SetCID(r.cid)
	if q.fabric != nil {
		return q.submitFabric(n, idx, data.Bytes, cb, arg) // fabric.go
	}
	if err := buildPRPs(&r.cmd, data, r.prp, q.ctrl.pageSize); err != nil {
		return err
	}
	q.free = q.free[:n-1]
	r.cb, r.arg, r.active = cb, arg, true
	r.tick, r.abortTick, r.retries = q.tmo.tick, 0, 0 // timeout.go, retry.go
	q.stats.Submitted++
	if q.swqCount > 0 || !q.roomInSQ() {
		q.swq[(q.swqHead+q.swqCount)%len(q.swq)] = idx
		q.swqCount++
		q.stats.SoftQueued++
		return nil
	}
	q.placeFrom(r, cmd)
	return q.afterPlace()
}

// roomInSQ reports whether one more command may be placed: the SQ has a slot the
// controller has fetched (by SQHD; one slot always stays empty so that a full ring is
// told from an empty one), and fewer commands than the CQ can hold are outstanding, so
// the controller never finds the CQ full.
func (q *QPair) roomInSQ() bool {
	return q.ringDistance(q.sqHead, q.sqTail) < q.size-1 && q.active < int(q.size)-1
}

// ringDistance is how many slots lie from a forward to b in the rings (both below
// size). Compare-and-add, not %: a division per command costs more than the rest.
func (q *QPair) ringDistance(a, b uint32) uint32 {
	d := b - a
	if b < a {
		d += q.size
	}
	return d
}

// setCIDLayout splits command identifiers between the request index (low bits, enough
// for nreq requests) and a generation count (the rest).
func (q *QPair) setCIDLayout(nreq int) {
	q.cidShift = uint(bits.Len(uint(nreq - 1)))
	q.cidMaskV = uint16(1<<q.cidShift - 1)
	q.genStep = uint16(1 << q.cidShift) // 0 when the index takes all 16 bits
}

// nextCID is the identifier for request idx's next use: its generation (the bits above
// the index) counts up by one and wraps, so an earlier use's late completion is told
// apart. One add and two masks, no shifts by a variable.
func (q *QPair) nextCID(prev, idx uint16) uint16 {
	return idx | (prev+q.genStep)&^q.cidMaskV
}

// place writes a request's command into the SQ ring at the tail.
func (q *QPair) place(r *request) {
	q.writeSQE(r, &r.cmd)
	q.placed(r)
}

// placeFrom is place for a request just built from cmd: a host-memory slot is copied
// from cmd, whose stores have long retired, with r's own CDW0 (CID) and PRPs. Copying
// r.cmd instead would load it in 16-byte pieces right after the narrow stores that set
// its CID and PRPs, which the CPU cannot forward: a stall of several ns per command.
func (q *QPair) placeFrom(r *request, cmd *spec.Command) {
	q.writeSQE(r, cmd)
	q.placed(r)
}

// placed accounts for a command written at the SQ tail.
func (q *QPair) placed(r *request) {
	r.placed = true
	q.sqTail++
	if q.sqTail == q.size {
		q.sqTail = 0
	}
	q.active++
	q.sinceRing++
}

// writeSQE is the one place a submission queue entry reaches the SQ: the slot at the
// tail becomes r's command. src is r.cmd or the command r.cmd was copied from, which
// differs from it only in CDW0 (the CID), PRP1 and PRP2. In host memory: one 64-byte
// copy of src, then plain stores of those three fields from r.cmd; the doorbell store
// that follows (bus.Store32) orders them before the controller is told. In the
// controller memory buffer (device memory): r.cmd with plain 8-byte stores (cmb.go).
func (q *QPair) writeSQE(r *request, src *spec.Command) {
	if q.sqInCMB {
		q.placeCMB(r) // cmb.go
		return
	}
	e := &q.sq[q.sqTail]
	*e = *src
	e.CDW0, e.PRP1, e.PRP2 = r.cmd.CDW0, r.cmd.PRP1, r.cmd.PRP2
}

// advanceSQHead takes the SQ head a completion reports. It is valid only between the
// current head and the tail (the controller cannot have fetched what was never
// placed); anything else is counted and ignored, so a corrupt or stale completion
// cannot make the queue pair overwrite entries the controller has yet to fetch.
func (q *QPair) advanceSQHead(sqhd uint32) {
	if sqhd >= q.size || q.ringDistance(q.sqHead, sqhd) > q.ringDistance(q.sqHead, q.sqTail) {
		q.stats.BadSQHeads++
		return
	}
	q.sqHead = sqhd
}

// afterPlace applies the doorbell policy after a submission.
func (q *QPair) afterPlace() error {
	switch q.doorbell {
	case target.DoorbellPerCommand:
		return q.ringSQ()
	case target.DoorbellEveryN:
		if q.sinceRing >= q.doorbellN {
			return q.ringSQ()
		}
	}
	return nil
}

// Poll reaps up to MaxCompletions completions, calling each command's callback, then
// rings the CQ head doorbell once and the SQ tail doorbell once if new commands were
// placed (by callbacks or earlier Submits). It returns how many commands completed. An
// error means the controller failed; every outstanding command has then been completed
// with an aborted status. A register access that faults (a removed device) fails the
// queue pair instead of killing the process.
func (q *QPair) Poll() (n int, err error) {
	if q.rcv.on { // recovery.go
		return q.pollRecovering()
	}
	if q.nothingToDo() {
		return 0, nil
	}
	return q.pollGuarded()
}

// nothingToDo is the empty poll's fast path: no completion has arrived, no placed
// command waits for the SQ doorbell, no timer is armed, and the idle check is not due
// on this poll. Such a poll reads only the CQ, in host memory, so it needs none of the
// register-fault guard (two runtime calls and a deferred recover) — while the host
// waits on a device, most polls are these. It does what poll would do then: count the
// empty poll when commands are outstanding.
func (q *QPair) nothingToDo() bool {
	if q.fabric != nil || q.failed != nil || q.cqMem.Bytes == nil || q.sqTail != q.lastRungTail || q.tmo.limit > 0 || len(q.retry.delayed) > 0 {
		return false
	}
	last := bus.LoadAcquire32((*uint32)(unsafe.Pointer(&q.cq[q.cqHead].CID)))
	if (last>>16)&1 == q.phase {
		return false // a completion to reap
	}
	if q.active > 0 {
		if (q.idlePolls+1)&0xFF == 0 {
			return false // idleCheck reads the clock (and maybe CSTS) on this one
		}
		q.idlePolls++
	}
	return true
}

// pollGuarded is Poll with register faults turned into a failure.
func (q *QPair) pollGuarded() (n int, err error) {
	if q.failed != nil {
		return 0, q.failed
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			n, err = 0, q.fail(faultError(p, "polling"))
		}
	}()
	return q.poll()
}

func (q *QPair) poll() (n int, err error) {
	if q.fabric != nil {
		return q.pollFabric()
	}
	for q.maxCompletions == 0 || n < q.maxCompletions {
		cpl := &q.cq[q.cqHead]
		// The phase tag shares the last dword with the status. It is read first, with
		// acquire ordering, so no field of the entry is read before the tag says the
		// controller has written it.
		last := bus.LoadAcquire32((*uint32)(unsafe.Pointer(&cpl.CID)))
		if (last>>16)&1 != q.phase {
			break
		}
		q.cqHead++
		if q.cqHead == q.size {
			q.cqHead = 0
			q.phase ^= 1
		}
		cid := uint16(last)
		idx := cid & q.cidMaskV
		if int(idx) >= len(q.reqs) {
			q.stats.SpuriousCIDs++
			continue
		}
		r := &q.reqs[idx]
		// SQHD and SQID share the entry's third dword: one load for both.
		dw2 := *(*uint32)(unsafe.Pointer(&cpl.SQHD))
		if uint16(dw2>>16) != q.id || !r.placed || r.cid != cid {
			// A duplicate or stray completion: it completes nothing and frees no slot.
			q.stats.SpuriousCIDs++
			continue
		}
		if sqhd := dw2 & 0xFFFF; sqhd != q.sqHead {
			q.advanceSQHead(sqhd)
		}
		q.active--
		if q.active == 0 {
			// Every placed command has completed, so the controller has fetched them
			// all, whatever the last SQHD said.
			q.sqHead = q.sqTail
		}
		if q.retry.max > 0 && q.retryOnError(idx, cpl) { // retry.go
			n++ // reaped: the CQ head doorbell must move on
			continue
		}
		r.active, r.placed = false, false
		cb, arg := r.cb, r.arg
		r.cb, r.arg = nil, nil
		// The free stack never holds more than len(q.reqs): no append growth check.
		nf := len(q.free)
		q.free = q.free[:nf+1]
		q.free[nf] = idx
		q.stats.Completed++
		n++
		cb.CommandDone(arg, cpl)
	}
	if n > 0 {
		q.idlePolls = 0
		q.idleSince = time.Time{}
		q.ringCQ()
		// Completions freed SQ slots: move waiting commands in.
		for q.swqCount > 0 && q.roomInSQ() {
			q.place(&q.reqs[q.swq[q.swqHead]])
			q.swqHead = (q.swqHead + 1) % len(q.swq)
			q.swqCount--
		}
	} else if q.active > 0 {
		if err := q.idleCheck(); err != nil {
			return 0, err
		}
	}
	if q.tmo.limit > 0 || len(q.retry.delayed) > 0 { // timeout.go, retry.go
		if err := q.timeoutPoll(); err != nil {
			return n, err
		}
	}
	if q.sqTail != q.lastRungTail {
		if err := q.ringSQ(); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (q *QPair) ringSQ() (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = q.fail(faultError(p, "ringing the SQ doorbell"))
		}
	}()
	old := q.lastRungTail
	q.lastRungTail = q.sqTail
	q.sinceRing = 0
	if q.sqShadow != nil { // shadowdb.go
		q.stats.SQShadowUpdates++
		if !updateShadow(q.sqShadow, q.sqEvent, old, q.sqTail) {
			q.stats.ShadowSkips++
			return nil
		}
	}
	q.writeDoorbell(q.sqDB, q.sqDBOff, uint32(q.sqTail))
	q.stats.SQDoorbells++
	return nil
}

// ringCQ tells the controller the new CQ head: through the shadow doorbell when in use,
// and the register when the controller's EventIdx asks for it (or always without). Not
// inlined, so the doorbell rules test finds it (qpair_rules_test.go).
//
//go:noinline
func (q *QPair) ringCQ() {
	if q.cqShadow != nil { // shadowdb.go
		old := q.lastCQHead
		q.lastCQHead = q.cqHead
		q.stats.CQShadowUpdates++
		if !updateShadow(q.cqShadow, q.cqEvent, old, q.cqHead) {
			q.stats.ShadowSkips++
			return
		}
	}
	q.writeDoorbell(q.cqDB, q.cqDBOff, uint32(q.cqHead))
	q.stats.CQDoorbells++
}

// writeDoorbell rings a doorbell with one plain 32-bit store (bus.Store32), ordered
// after the SQ entries written before it.
func (q *QPair) writeDoorbell(p *uint32, off uint32, v uint32) {
	if p != nil {
		bus.Store32(p, v)
		return
	}
	q.ctrl.regs.Write32(off, v)
}

// fail marks the queue pair failed and completes every outstanding command with an
// "aborted due to SQ deletion" status so that callers see each one end.
func (q *QPair) fail(err error) error {
	if q.failed != nil {
		return q.failed
	}
	q.failed = err
	q.stats.FailedPolls++
	var cpl spec.Completion
	cpl.SQID = q.id
	cpl.Status = uint16(spec.MakeStatus(spec.SCTGeneric, spec.SCAbortedSQDeletion).WithDNR()) << 1
	for i := range q.reqs {
		r := &q.reqs[i]
		if !r.active {
			continue
		}
		r.active, r.placed = false, false
		cb, arg := r.cb, r.arg
		r.cb, r.arg = nil, nil
		q.free = append(q.free, uint16(i))
		cpl.CID = r.cid
		cb.CommandDone(arg, &cpl)
	}
	q.swqCount, q.active = 0, 0
	return err
}

// Command returns the command as submitted for the request with identifier cid, for
// building error messages in callbacks (valid during the callback).
func (q *QPair) Command(cid uint16) *spec.Command {
	idx := cid & q.cidMask()
	if int(idx) >= len(q.reqs) || q.reqs[idx].cid != cid {
		return nil
	}
	return &q.reqs[idx].cmd
}

// cidMask selects the request index from a command identifier.
func (q *QPair) cidMask() uint16 { return q.cidMaskV }

// idleCheck runs after a poll that completed nothing while commands are outstanding:
// when nothing has come back for a while, make sure the controller is still alive, so
// a dead device ends the run instead of hanging it. The clock is read only every 256
// empty polls.
func (q *QPair) idleCheck() error {
	q.idlePolls++
	if q.idlePolls&0xFF != 0 {
		return nil
	}
	now := time.Now()
	if q.idleSince.IsZero() {
		q.idleSince = now
	} else if now.Sub(q.idleSince) >= healthCheckInterval {
		q.idleSince = now
		if err := q.ctrl.checkAlive(); err != nil {
			return q.fail(err)
		}
	}
	return nil
}
