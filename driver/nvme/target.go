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
func (t *NamespaceTarget) OpenQueue(cfg target.QueueConfig) (target.Queue, error) {
	c := t.ns.ctrl
	if cfg.Depth < 1 {
		return nil, fmt.Errorf("nvme: queue depth %d: must be at least 1", cfg.Depth)
	}
	if cfg.IOSize < int(t.ns.sectorSize) || cfg.IOSize%int(t.ns.sectorSize) != 0 {
		return nil, fmt.Errorf("nvme: I/O size %d is not a multiple of NSID %d's %d-byte logical block", cfg.IOSize, t.ns.id, t.ns.sectorSize)
	}
	if cfg.IOSize > c.maxTransfer {
		return nil, fmt.Errorf("nvme: I/O size %d exceeds the controller's maximum transfer of %d bytes (MDTS)", cfg.IOSize, c.maxTransfer)
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
	nbuf := cfg.Buffers
	if nbuf == 0 {
		nbuf = cfg.Depth
	}
	entries := cfg.QueueSize
	if entries == 0 {
		entries = max(256, cfg.Depth+1)
	}
	qp, err := c.NewIOQPair(QPairOptions{
		Entries:        entries,
		Requests:       cfg.Depth,
		MaxTransfer:    cfg.IOSize,
		Doorbell:       cfg.Doorbell,
		DoorbellN:      cfg.DoorbellN,
		MaxCompletions: cfg.MaxCompletions,
	})
	if err != nil {
		return nil, err
	}
	stride := (cfg.BufferOffset + cfg.IOSize + pageSize - 1) &^ (pageSize - 1)
	bufs, err := c.dma.Alloc(stride * nbuf)
	if err != nil {
		_ = c.FreeIOQPair(qp)
		return nil, fmt.Errorf("nvme: allocating %d I/O buffers of %d bytes: %w", nbuf, cfg.IOSize, err)
	}
	debug.SetPanicOnFault(true)
	return &nsQueue{
		qp: qp, ns: t.ns, bufs: bufs, stride: stride, offset: cfg.BufferOffset, ioSize: cfg.IOSize,
		nbuf: nbuf, handler: cfg.Handler, lbaShift: uint(bits.TrailingZeros32(t.ns.sectorSize)),
	}, nil
}

// nsQueue is a target.Queue over one QPair.
type nsQueue struct {
	qp       *QPair
	ns       *Namespace
	bufs     bus.Buffer
	stride   int
	offset   int
	ioSize   int
	nbuf     int
	handler  target.Handler
	lbaShift uint
	cmd      spec.Command // scratch, copied by Submit
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
	slba, nlb := r.Offset>>q.lbaShift, r.Length>>q.lbaShift
	if r.Op == target.OpWrite {
		q.ns.WriteCommand(&q.cmd, slba, nlb)
	} else {
		q.ns.ReadCommand(&q.cmd, slba, nlb)
	}
	return q.qp.Submit(&q.cmd, q.bufs.Slice(r.Buf*q.stride+q.offset, int(r.Length)), q, r)
}

// CommandDone implements Callback: it turns the NVMe status into the request's error.
func (q *nsQueue) CommandDone(arg any, cpl *spec.Completion) {
	r := arg.(*target.Request)
	r.Err = nil
	if st := cpl.StatusField(); !st.OK() {
		if err := q.qp.Err(); err != nil {
			r.Err = err
		} else {
			r.Err = StatusErrorFor(false, q.qp.Command(cpl.CID), st)
		}
	}
	q.handler.Complete(r)
}

func (q *nsQueue) Poll() (int, error) { return q.qp.Poll() }

func (q *nsQueue) Outstanding() int { return q.qp.Outstanding() }

// QPair exposes the underlying queue pair (statistics, raw commands).
func (q *nsQueue) QPair() *QPair { return q.qp }

func (q *nsQueue) Close() error {
	err := q.ns.ctrl.FreeIOQPair(q.qp)
	if q.bufs.Len() > 0 {
		// Commands of a queue that could not be deleted may still move data.
		q.ns.ctrl.freeDMA(q.bufs, err != nil || q.ns.ctrl.Err() != nil)
		q.bufs = bus.Buffer{}
	}
	return err
}
