package nvme

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// The transport seam. One controller logic (bring-up through properties, identify,
// namespaces, features, queue pairs, split and verify) runs over one of two kinds of
// transport, as SPDK's transport ops table does (construct, get/set property,
// create/delete I/O qpair, submit, process completions):
//
//   - memory-based (PCIe, sim): bus.Registers for the properties (MMIO) and
//     bus.Allocator for queue rings, PRP lists and data; queues are rings in host memory
//     with doorbells. This is Attach and the ring code of qpair.go.
//   - message-based (NVMe over Fabrics: NVMe/TCP today, room for RDMA): a Fabric. Each
//     queue pair is a FabricQueue (one connection) that carries command capsules and
//     completions; properties are Property Get/Set commands on the admin queue. This is
//     AttachFabric.
//
// Everything above the seam — Controller, QPair's request slots and command
// identifiers, the split and verify code — is the same for both.

// Fabric is a message-based transport (NVMe over Fabrics). It is also the allocator
// of the data buffers (plain memory: a fabric moves data by copying it to the wire).
type Fabric interface {
	bus.Allocator
	// Name names the transport in messages ("TCP").
	Name() string
	// ConnectQueue opens one queue pair: QID 0 is the admin queue (Fabrics Connect with
	// CNTLID FFFFh, which allocates the controller, and the keep alive timeout); other
	// QIDs are I/O queues of the controller the admin Connect returned.
	ConnectQueue(cfg FabricQueueConfig) (FabricQueue, error)
	// Close releases the transport once every queue is closed.
	Close() error
}

// FabricContextConnector is a Fabric whose ConnectQueue can be called off. A queue pair
// that connects again after a reset does so on a goroutine of its own
// (fabricrecovery.go); when the queue pair is freed or the connection is no longer
// wanted, the context is cancelled, and a transport that implements this returns at
// once instead of when its connect timeout ends.
type FabricContextConnector interface {
	ConnectQueueContext(ctx context.Context, cfg FabricQueueConfig) (FabricQueue, error)
}

// FabricQueueConfig describes a queue pair to connect.
type FabricQueueConfig struct {
	QID     uint16
	Entries int // SQ size (Connect SQSIZE+1)
	// Requests is the most commands outstanding at once (below Entries, so the queue
	// never overflows and SQ flow control can be disabled). CIDMask selects the bits of
	// a command identifier that name its slot (below Requests); the other bits change
	// with each use of the slot.
	Requests int
	CIDMask  uint16
	// InCapsuleData is the most write data carried in a command capsule (IOCCSZ); larger
	// writes are moved by the transport (NVMe/TCP: R2T and H2CData).
	InCapsuleData int
	// MaxTransfer is the largest data transfer of one command.
	MaxTransfer int
	// KeepAlive is the keep alive timeout (KATO) of the admin queue's Connect; 0 none.
	KeepAlive time.Duration
}

// FabricQueue carries one queue pair's capsules. It belongs to the goroutine that owns
// its QPair: no method is safe for concurrent use, and none locks.
type FabricQueue interface {
	// Submit queues cmd (its CID set) with its data: in the capsule, or announced for
	// the transport to move. The data pointer of cmd (SGL) is the transport's to fill.
	// Nothing is sent before the next Process. data must stay valid until the command
	// completes; for reads the transport writes into it.
	Submit(cmd *spec.Command, data []byte) error
	// Process reads what has arrived without blocking, hands every completion to done,
	// answers data requests, and then sends everything queued with one write.
	Process(done Completer) error
	// Close ends the connection; outstanding commands are abandoned.
	Close() error
}

// Completer receives the completions a FabricQueue reads. cpl is valid only during
// the call.
type Completer interface {
	Complete(cpl *spec.Completion)
}

// AttachFabric brings up the controller behind f: it connects the admin queue, then
// runs the same bring-up as Attach through Property Get/Set — disable if enabled, CC
// with EN=1, wait for CSTS.RDY — identifies the controller and its namespaces and
// negotiates the number of I/O queues. A discovery controller (CNTRLTYPE 2) stops
// after Identify Controller. With Options.KeepAlive it sends Keep Alive every half
// of it until Detach.
func AttachFabric(f Fabric, opts Options) (*Controller, error) {
	opts.defaults()
	c := &Controller{dma: f, fabric: f, opts: opts, open: map[*QPair]struct{}{}, pageSize: bus.PageSize}
	c.regs = &fabricProperties{c: c}
	err := c.guard("enabling the controller", c.enableFabric)
	if err == nil {
		err = c.guard("identifying the controller", c.identify)
	}
	if err != nil {
		return nil, errors.Join(err, c.teardown(false), f.Close())
	}
	if opts.KeepAlive > 0 {
		c.keepAliveStop, c.keepAliveDone = make(chan struct{}), make(chan struct{})
		go c.keepAlive(opts.KeepAlive / 2)
	}
	c.startFabricRecovery() // fabricrecovery.go
	if !c.IsDiscovery() {
		c.startAsyncEvents() // aer.go
	}
	return c, nil
}

// Fabric is the message-based transport under the controller, or nil for PCIe/sim.
func (c *Controller) Fabric() Fabric { return c.fabric }

func (c *Controller) enableFabric() error {
	c.maxTransfer = c.opts.MaxTransfer // until Identify tells
	entries := min(c.opts.AdminEntries, 4096)
	admin, err := newQPair(c, 0, QPairOptions{Entries: entries, MaxTransfer: 2 * pageSize})
	if err != nil {
		return err
	}
	c.admin = admin
	if c.scratch, err = c.dma.Alloc(pageSize); err != nil {
		return fmt.Errorf("nvme: allocating identify buffer: %w", err)
	}
	c.cap = spec.CAP(c.regs.Read64(spec.RegCAP))
	if err := c.Err(); err != nil {
		return err
	}
	if err := c.checkCapabilities(); err != nil {
		return err
	}
	if err := c.disableFirst(); err != nil {
		return err
	}
	c.regs.Write32(spec.RegCC, uint32(spec.MakeCC(true, 0, c.cap.MPSMIN(), spec.CCShutdownNone, spec.SQESizeLog, spec.CQESizeLog)))
	return c.waitReady(true, "enabling controller")
}

// controllerType is Identify Controller CNTRLTYPE (0 for controllers before NVMe 1.4).
func (c *Controller) controllerType() uint8 {
	return (*[spec.IdentifyDataSize]byte)(unsafe.Pointer(&c.ident))[spec.IdentifyOffsetCNTRLTYPE]
}

// IsDiscovery reports whether this is a discovery controller (it has no namespaces and
// no I/O queues; its discovery log lists NVM subsystems). Controllers before NVMe 1.4
// leave CNTRLTYPE 0: their subsystem NQN tells.
func (c *Controller) IsDiscovery() bool {
	return c.controllerType() == spec.ControllerTypeDiscovery ||
		(c.fabric != nil && c.ident.SubsystemNQN() == spec.DiscoveryNQN)
}

// inCapsuleData is how much write data an I/O command capsule carries: IOCCSZ (in
// 16-byte units, the 64-byte SQE included) from Identify Controller.
func (c *Controller) inCapsuleData() int { return c.inCapsuleDataOf(&c.ident) }

// inCapsuleDataOf is inCapsuleData from the Identify Controller data id (0 on PCIe,
// where IOCCSZ is reserved).
func (c *Controller) inCapsuleDataOf(id *spec.IdentifyController) int {
	b := (*[spec.IdentifyDataSize]byte)(unsafe.Pointer(id))[spec.IdentifyOffsetIOCCSZ:]
	ioccsz := int(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
	return max(ioccsz*16-spec.SQESize, 0)
}

// adminInCapsuleData is the in-capsule data every fabrics admin queue takes: 8 KiB
// capsules (NVMe-oF 1.1, section 2.2), the SQE included.
const adminInCapsuleData = 8192 - spec.SQESize

// DiscoveryLog reads the discovery log page of a discovery controller: every entry it
// lists.
func (c *Controller) DiscoveryLog() ([]spec.DiscoveryLogEntry, error) {
	const chunk = 4096
	buf, err := c.dma.Alloc(chunk)
	if err != nil {
		return nil, err
	}
	defer c.dma.Free(buf)
	read := func(off uint64) error {
		cmd := spec.Command{CDW10: spec.LogDiscovery | (chunk/4-1)<<16, CDW12: uint32(off), CDW13: uint32(off >> 32)}
		cmd.SetOpcodeCID(uint8(spec.AdminGetLogPage), 0)
		clear(buf.Bytes)
		if _, err := c.AdminCommand(&cmd, buf); err != nil {
			return fmt.Errorf("nvme: reading the discovery log at offset %d: %w", off, err)
		}
		return nil
	}
	if err := read(0); err != nil {
		return nil, err
	}
	var h spec.DiscoveryLogHeader
	h.Unmarshal(buf.Bytes)
	if h.NUMREC > 1024 {
		return nil, fmt.Errorf("nvme: discovery log lists %d records; nvmeperf reads at most 1024", h.NUMREC)
	}
	entries := make([]spec.DiscoveryLogEntry, h.NUMREC)
	loaded := uint64(0) // log bytes in buf start here
	for i := range entries {
		off := uint64(spec.DiscoveryLogHeaderSize + i*spec.DiscoveryLogEntrySize)
		if off+spec.DiscoveryLogEntrySize > loaded+chunk {
			loaded = off
			if err := read(off); err != nil {
				return nil, err
			}
		}
		entries[i].Unmarshal(buf.Bytes[off-loaded:])
	}
	return entries, nil
}

// keepAlive sends Keep Alive every interval until Detach; a failure fails the
// controller, which ends every queue pair's run at its next health check, or with
// Recovery.Recover has it reset (fabricrecovery.go).
func (c *Controller) keepAlive(interval time.Duration) {
	defer close(c.keepAliveDone)
	t := time.NewTicker(max(interval, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.keepAliveStop:
			return
		case <-t.C:
		}
		if c.opts.Recovery.Recover && (c.rec.resetting.Load() || c.Err() != nil) {
			continue // fabricrecovery.go: the association is being replaced
		}
		cmd := spec.Command{}
		cmd.SetOpcodeCID(uint8(spec.AdminKeepAlive), 0)
		if _, err := c.AdminCommand(&cmd, bus.Buffer{}); err != nil {
			err = fmt.Errorf("nvme: keep alive: %w", err)
			if c.opts.Recovery.Recover {
				c.fabricFailure(c.rec.gen.Load(), err) // reset; keep alive goes on with the new association
				continue
			}
			c.markFailed(err)
			return
		}
	}
}

func (c *Controller) stopKeepAlive() {
	if c.keepAliveStop != nil {
		close(c.keepAliveStop)
		<-c.keepAliveDone
		c.keepAliveStop = nil
	}
}

// fabricProperties is bus.Registers over Property Get/Set on the admin queue, so the
// bring-up, shutdown, disable and reset code is the one PCIe runs. A property access
// that fails fails the controller and reads as all ones, what a removed PCIe device
// reads.
type fabricProperties struct {
	c *Controller
	// adminHeld is set while the goroutine that holds the admin lock (a reset,
	// resetController) accesses properties: they then go on the admin queue without
	// taking the lock again. Nothing else reads a fabric's properties meanwhile (a
	// fabric's checkAlive reads none; the asynchronous event poller and keep alive
	// stay off while a reset runs).
	adminHeld atomic.Bool
}

// holdingAdminLock marks the properties as accessed under the admin lock until the
// returned function is called. It does nothing for memory-based controllers.
func (c *Controller) holdingAdminLock() (release func()) {
	p, ok := c.regs.(*fabricProperties)
	if !ok {
		return func() {}
	}
	p.adminHeld.Store(true)
	return func() { p.adminHeld.Store(false) }
}

func (p *fabricProperties) admin(cmd *spec.Command) (spec.Completion, error) {
	if p.adminHeld.Load() {
		return p.c.adminLocked(cmd, bus.Buffer{})
	}
	return p.c.AdminCommand(cmd, bus.Buffer{})
}

func (p *fabricProperties) get(off uint32, size8 bool) uint64 {
	pg := spec.PropertyGetCommand{OFST: off}
	if size8 {
		pg.ATTRIB = spec.PropertySize8
	}
	cmd := pg.ToCommand()
	cpl, err := p.admin(&cmd)
	if err != nil {
		p.c.markFailed(fmt.Errorf("%w: Property Get %#x: %w", ErrFailed, off, err))
		return ^uint64(0)
	}
	return uint64(cpl.DW0) | uint64(cpl.DW1)<<32
}

func (p *fabricProperties) set(off uint32, v uint64, size8 bool) {
	ps := spec.PropertySetCommand{OFST: off, VALUE: v}
	if size8 {
		ps.ATTRIB = spec.PropertySize8
	}
	cmd := ps.ToCommand()
	if _, err := p.admin(&cmd); err != nil {
		p.c.markFailed(fmt.Errorf("%w: Property Set %#x: %w", ErrFailed, off, err))
	}
}

func (p *fabricProperties) Read32(off uint32) uint32     { return uint32(p.get(off, false)) }
func (p *fabricProperties) Write32(off uint32, v uint32) { p.set(off, uint64(v), false) }
func (p *fabricProperties) Read64(off uint32) uint64     { return p.get(off, true) }
func (p *fabricProperties) Write64(off uint32, v uint64) { p.set(off, v, true) }

// connectFabric sets up a queue pair's request slots and connects its queue. Fabric
// queues have no rings: at most Entries-1 commands are ever outstanding, so the
// controller's queue cannot overflow.
func (q *QPair) connectFabric(nreq int) error {
	nreq = min(nreq, int(q.size)-1)
	q.reqs = make([]request, nreq)
	q.setCIDLayout(nreq)
	q.free = make([]uint16, nreq)
	q.swq = make([]uint16, nreq)
	for i := range q.reqs {
		q.free[i] = uint16(nreq - 1 - i)
	}
	q.completer.q = q
	q.fab.data = make([][]byte, nreq)
	q.fab.cfg = FabricQueueConfig{
		QID: q.id, Entries: int(q.size), Requests: nreq, CIDMask: q.cidMask(),
		InCapsuleData: adminInCapsuleData, MaxTransfer: q.maxTransfer,
	}
	if q.id == 0 {
		q.fab.cfg.KeepAlive = q.ctrl.opts.KeepAlive
	} else {
		q.fab.cfg.InCapsuleData = q.ctrl.inCapsuleData()
	}
	if err := q.dialFabric(); err != nil {
		return err
	}
	q.initTimeout()  // timeout.go
	q.initRecovery() // recovery.go, fabricrecovery.go
	q.initRetry()    // retry.go
	return nil
}

// dialFabric connects the queue pair's queue (again, after a reset).
func (q *QPair) dialFabric() error {
	fq, err := q.ctrl.fabric.ConnectQueue(q.fab.cfg)
	if err != nil {
		return fmt.Errorf("nvme: connecting %s queue %d: %w", q.ctrl.fabric.Name(), q.id, err)
	}
	q.fabric = fq
	return nil
}

// fabricQueueState is a fabric queue pair's own state beyond the request slots; it
// belongs to the owner goroutine.
type fabricQueueState struct {
	cfg FabricQueueConfig // how the queue was connected, to connect it again
	// data is each request's data, so that a retry or a command submitted while the
	// connection was down can be sent (again) with it.
	data [][]byte
	// parked: the connection was lost and the controller is being reset; q.fabric is
	// a parkedQueue that keeps what is submitted until the queue reconnects
	// (fabricrecovery.go).
	parked bool
	// connecting is the queue's connect after a reset, running on a goroutine of its
	// own (fabricrecovery.go); nil when none is under way.
	connecting *fabricConnect
}

// submitFabric is Submit on a fabric queue: request idx (popped from the top n of the
// free stack) with its CID set goes to the transport, which sends it at the next Poll.
func (q *QPair) submitFabric(n int, idx uint16, data []byte, cb Callback, arg any) error {
	r := &q.reqs[idx]
	if err := q.fabric.Submit(&r.cmd, data); err != nil {
		return err
	}
	q.free = q.free[:n-1]
	r.cb, r.arg, r.active, r.placed = cb, arg, true, true
	r.tick, r.abortTick, r.retries = q.tmo.tick, 0, 0 // timeout.go, retry.go
	q.fab.data[idx] = data
	q.active++
	q.sinceRing++ // sent by the next Poll
	q.stats.Submitted++
	return nil
}

// resendFabric sends request idx again (a retry, retry.go, or a command kept while the
// connection was down). When the transport refuses it (the connection just failed),
// the request stays active and the failure handling completes it.
func (q *QPair) resendFabric(idx uint16) {
	r := &q.reqs[idx]
	if err := q.fabric.Submit(&r.cmd, q.fab.data[idx]); err != nil {
		return
	}
	r.placed = true
	q.active++
	q.sinceRing++
}

// fabricCompleter hands a FabricQueue's completions to its QPair.
type fabricCompleter struct {
	q *QPair
	n int // completions in the current poll
}

func (f *fabricCompleter) Complete(cpl *spec.Completion) {
	q := f.q
	cid := cpl.CID
	idx := cid & q.cidMask()
	if int(idx) >= len(q.reqs) || !q.reqs[idx].placed || q.reqs[idx].cid != cid {
		q.stats.SpuriousCIDs++
		return
	}
	q.active--
	f.n++
	if q.retry.max > 0 && q.retryOnError(idx, cpl) { // retry.go
		return
	}
	r := &q.reqs[idx]
	r.active, r.placed = false, false
	cb, arg := r.cb, r.arg
	r.cb, r.arg = nil, nil
	q.fab.data[idx] = nil
	q.free = append(q.free, idx)
	q.stats.Completed++
	cb.CommandDone(arg, cpl)
}

// pollFabric is Poll for a fabric queue: one Process reads every completion that has
// arrived and sends what the callbacks (and earlier Submits) queued with one write.
func (q *QPair) pollFabric() (int, error) {
	q.completer.n = 0
	err := q.fabric.Process(&q.completer)
	n := q.completer.n
	if err != nil {
		// A lost or broken connection is a failed controller for the run's verdict.
		if !errors.Is(err, ErrFailed) {
			err = fmt.Errorf("%w: %w", ErrFailed, err)
		}
		return n, q.fail(err)
	}
	// The transport's doorbells, for --transport-stats: a send that carried capsules, a
	// poll that reaped completions.
	if q.sinceRing > 0 {
		q.stats.SQDoorbells++
		q.sinceRing = 0
	}
	if n > 0 {
		q.stats.CQDoorbells++
		q.idlePolls = 0
		q.idleSince = time.Time{}
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
	return n, nil
}
