package nvme

import (
	"fmt"
	"math/bits"
	"runtime/debug"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// NamespaceTarget drives one namespace through target.Queue, so the workload engine
// can run on it. Each OpenQueue creates one I/O queue pair.
type NamespaceTarget struct {
	ns      *Namespace
	info    target.Info
	onClose func() error
}

// NewTarget wraps ns. info describes it for reports (Name, TRID, Transport); the
// identify-derived fields are filled in here. onClose, if not nil, runs on Close (the
// opener uses it to detach the controller after its last namespace).
func NewTarget(ns *Namespace, info target.Info, onClose func() error) *NamespaceTarget {
	id := ns.ctrl.Identify()
	info.Model, info.Serial, info.Firmware = id.Model(), id.Serial(), id.Firmware()
	info.NSID = ns.id
	info.LBASize = ns.sectorSize
	info.Capacity = ns.Capacity()
	info.MaxTransfer = uint32(ns.ctrl.maxTransfer)
	cmb := ns.ctrl.CMB() // cmb.go
	info.CMB, info.SQInCMB = cmb.Size, cmb.SQs
	return &NamespaceTarget{ns: ns, info: info, onClose: onClose}
}

// Info describes the namespace.
func (t *NamespaceTarget) Info() target.Info { return t.info }

// Namespace is the wrapped namespace.
func (t *NamespaceTarget) Namespace() *Namespace { return t.ns }

// Close runs the target's close hook.
func (t *NamespaceTarget) Close() error {
	if t.onClose != nil {
		f := t.onClose
		t.onClose = nil
		return f()
	}
	return nil
}

// OpenQueue creates an I/O queue pair with DMA buffers for the calling goroutine. It
// also turns on debug.SetPanicOnFault for that goroutine, so that a BAR access that
// faults (a removed device) fails the queue instead of killing the process.
//
// An I/O larger than the controller's maximum transfer (MDTS) or than cfg.IOUnitSize is
// split into several commands (see split.go). A namespace format nvmeperf cannot drive
// is refused with an error that names it.
func (t *NamespaceTarget) OpenQueue(cfg target.QueueConfig) (target.Queue, error) {
	c := t.ns.ctrl
	f := t.ns.Format()
	if err := t.ns.CheckFormat(); err != nil {
		return nil, err
	}
	lba := int(f.LBASize)
	if cfg.Depth < 1 {
		return nil, fmt.Errorf("nvme: queue depth %d: must be at least 1", cfg.Depth)
	}
	if cfg.IOSize < lba || cfg.IOSize%lba != 0 {
		return nil, fmt.Errorf("nvme: I/O size %d is not a multiple of NSID %d's %d-byte logical block", cfg.IOSize, t.ns.id, lba)
	}
	unit := cfg.IOUnitSize
	if unit == 0 {
		unit = cfg.IOSize
	}
	if unit < lba || unit%lba != 0 || unit > cfg.IOSize {
		return nil, fmt.Errorf("nvme: I/O unit size %d: must be a multiple of NSID %d's %d-byte logical block and at most the I/O size %d", unit, t.ns.id, lba, cfg.IOSize)
	}
	if cfg.BufferOffset < 0 || cfg.BufferOffset%4 != 0 {
		return nil, fmt.Errorf("nvme: buffer offset %d: must be a non-negative multiple of 4 (PRPs are dword aligned)", cfg.BufferOffset)
	}
	if cfg.QueueSize != 0 && cfg.QueueSize < 2 {
		return nil, fmt.Errorf("nvme: I/O queue size %d: must be at least 2", cfg.QueueSize)
	}
	if cfg.Handler == nil {
		return nil, fmt.Errorf("nvme: queue config has no completion handler")
	}
	var fua uint32
	if cfg.FUA {
		fua = spec.RWForceUnitAccess
	}
	l := newLayout(f, cfg.Protection)
	perCmd := c.maxTransfer / l.wireBlock
	if perCmd < 1 {
		return nil, fmt.Errorf("nvme: NSID %d format %s: one block of %d bytes exceeds the controller's maximum transfer of %d bytes (MDTS)", t.ns.id, f, l.wireBlock, c.maxTransfer)
	}
	ioBlocks := cfg.IOSize / lba
	unitBlocks := min(unit/lba, perCmd, maxNLB)
	children := (ioBlocks + unitBlocks - 1) / unitBlocks
	nbuf := cfg.Buffers
	if nbuf == 0 {
		nbuf = cfg.Depth
	}
	entries := cfg.QueueSize
	if entries == 0 {
		entries = max(256, cfg.Depth+1, min(cfg.Depth*children+1, maxSplitEntries))
	}
	// Command slots: one per child of every I/O in flight, as far as the SQ can take
	// them; parents that find no free slot wait for one (splitQueue.pending).
	requests := max(cfg.Depth, min(cfg.Depth*children, entries-1, 65535))
	qp, err := c.NewIOQPair(QPairOptions{
		Entries:        entries,
		Requests:       requests,
		MaxTransfer:    unitBlocks * l.wireBlock,
		Doorbell:       cfg.Doorbell,
		DoorbellN:      cfg.DoorbellN,
		MaxCompletions: cfg.MaxCompletions,
	})
	if err != nil {
		return nil, err
	}
	q := &nsQueue{
		qp: qp, ns: t.ns, offset: cfg.BufferOffset, ioSize: cfg.IOSize, nbuf: nbuf,
		handler: cfg.Handler, lbaShift: uint(bits.TrailingZeros32(f.LBASize)),
		layout: l, unitBlocks: uint32(unitBlocks),
	}
	q.stride = (cfg.BufferOffset + cfg.IOSize + pageSize - 1) &^ (pageSize - 1)
	fail := func(what string, size int, err error) (target.Queue, error) {
		q.freeBuffers(false) // never handed to the controller
		_ = c.FreeIOQPair(qp)
		return nil, fmt.Errorf("nvme: allocating %s (%d bytes): %w", what, size, err)
	}
	if q.bufs, err = c.dma.Alloc(q.stride * nbuf); err != nil {
		return fail("I/O buffers", q.stride*nbuf, err)
	}
	if l.interleave {
		q.wireStride = (cfg.BufferOffset + ioBlocks*l.wireBlock + pageSize - 1) &^ (pageSize - 1)
		if q.wire, err = c.dma.Alloc(q.wireStride * nbuf); err != nil {
			return fail("extended-LBA transfer buffers", q.wireStride*nbuf, err)
		}
	}
	if l.separate {
		q.metaStride = (ioBlocks*l.pi.ms + 63) &^ 63
		if q.meta, err = c.dma.Alloc(q.metaStride * nbuf); err != nil {
			return fail("metadata buffers", q.metaStride*nbuf, err)
		}
	}
	q.initSplit(cfg.Depth)
	debug.SetPanicOnFault(true)
	q.fua = fua
	return q, nil
}

// nsQueue is a target.Queue over one QPair.
type nsQueue struct {
	qp       *QPair
	ns       *Namespace
	bufs     bus.Buffer // data buffers, what Buffer returns
	stride   int
	offset   int
	ioSize   int
	nbuf     int
	handler  target.Handler
	lbaShift uint
	cmd      spec.Command // scratch, copied by Submit
	fua      uint32       // CDW12 FUA bit for every read and write, or 0

	polls, idlePolls uint64 // for TransportStats

	layout     layout
	unitBlocks uint32     // most blocks one command carries
	wire       bus.Buffer // extended LBAs: data and metadata interleaved, as transferred
	wireStride int
	meta       bus.Buffer // separate metadata, one region per buffer (MPTR)
	metaStride int

	splitQueue
}

func (q *nsQueue) Buffer(i int) []byte {
	start := i*q.stride + q.offset
	return q.bufs.Bytes[start : start+q.ioSize : start+q.ioSize]
}

func (q *nsQueue) Submit(r *target.Request) error {
	mask := uint64(q.ns.sectorSize) - 1
	if (r.Offset|uint64(r.Length))&mask != 0 || r.Length == 0 || int(r.Length) > q.ioSize || r.Buf < 0 || r.Buf >= q.nbuf {
		return fmt.Errorf("nvme: request %s offset %d length %d buffer %d: offset and length must be multiples of %d bytes, length at most %d, buffer below %d",
			r.Op, r.Offset, r.Length, r.Buf, q.ns.sectorSize, q.ioSize, q.nbuf)
	}
	if err := q.qp.Err(); err != nil {
		return err
	}
	p := q.getParent()
	if p == nil {
		return ErrQueueFull
	}
	p.r, p.buf = r, r.Buf
	p.slba, p.nlb = r.Offset>>q.lbaShift, uint32(r.Length>>q.lbaShift)
	p.write = r.Op == target.OpWrite
	if p.write {
		q.prepareWrite(p)
	}
	if q.pending.count == 0 && p.nlb <= q.unitBlocks && q.qp.Outstanding() < q.qp.Capacity() {
		// The usual I/O: one command, a free slot, nobody waiting before it. pump would
		// issue it at once; doing so here skips the FIFO's push and pop per I/O.
		q.issueOne(p)
		return nil
	}
	q.enqueue(p)
	q.pump()
	return nil
}

func (q *nsQueue) Poll() (int, error) {
	q.reaped = 0
	_, err := q.qp.Poll()
	if err != nil {
		q.failPending(err)
	}
	q.deliverDeferred()
	q.polls++
	if q.reaped == 0 {
		q.idlePolls++
	}
	return q.reaped, err
}

// TransportStats implements target.StatsQueue.
func (q *nsQueue) TransportStats() target.QueueStats {
	s := q.qp.Stats()
	return target.QueueStats{
		Polls: q.polls, IdlePolls: q.idlePolls, Completions: s.Completed, Submitted: s.Submitted,
		SQDoorbells: s.SQDoorbells, CQDoorbells: s.CQDoorbells, Queued: s.SoftQueued,
		SQShadowUpdates: s.SQShadowUpdates, CQShadowUpdates: s.CQShadowUpdates, ShadowSkips: s.ShadowSkips,
		SQInCMB: b2u(q.qp.SQInCMB()), // cmb.go
	}
}

func (q *nsQueue) Outstanding() int { return q.inUse() }

// QPair exposes the underlying queue pair (statistics, raw commands).
func (q *nsQueue) QPair() *QPair { return q.qp }

func (q *nsQueue) Close() error {
	err := q.ns.ctrl.FreeIOQPair(q.qp)
	// Commands of a queue that could not be deleted may still move data.
	q.freeBuffers(err != nil || q.ns.ctrl.Err() != nil)
	return err
}

// freeBuffers releases the data, extended-LBA and metadata buffers; deviceMayUse keeps
// them until the controller is stopped (Controller.freeDMA).
func (q *nsQueue) freeBuffers(deviceMayUse bool) {
	for _, b := range []*bus.Buffer{&q.bufs, &q.wire, &q.meta} {
		if b.Len() > 0 {
			q.ns.ctrl.freeDMA(*b, deviceMayUse)
			*b = bus.Buffer{}
		}
	}
}
