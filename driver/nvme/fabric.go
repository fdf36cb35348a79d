package nvme

import (
	"errors"
	"fmt"
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
	if r := opts.Recovery; r.IOTimeout > 0 || r.Recover || r.Retries > 0 {
		// Timeouts, resets and retries live in the memory-ring poll path; a fabric
		// queue would silently ignore them.
		return nil, errors.Join(fmt.Errorf("nvme: %s: --io-timeout, --recover and --retries are not supported over fabrics yet (docs/recovery.md)", f.Name()), f.Close())
	}
	opts.defaults()
	c := &Controller{dma: f, fabric: f, opts: opts, open: map[*QPair]struct{}{}, pageSize: bus.PageSize}
	c.regs = fabricProperties{c}
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
func (c *Controller) inCapsuleData() int {
	b := (*[spec.IdentifyDataSize]byte)(unsafe.Pointer(&c.ident))[spec.IdentifyOffsetIOCCSZ:]
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
// controller, which ends every queue pair's run at its next health check.
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
		cmd := spec.Command{}
		cmd.SetOpcodeCID(uint8(spec.AdminKeepAlive), 0)
		if _, err := c.AdminCommand(&cmd, bus.Buffer{}); err != nil {
			c.markFailed(fmt.Errorf("nvme: keep alive: %w", err))
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
// bring-up, shutdown and disable code is the one PCIe runs. A property access that
// fails fails the controller and reads as all ones, what a removed PCIe device reads.
type fabricProperties struct{ c *Controller }

func (p fabricProperties) get(off uint32, size8 bool) uint64 {
	pg := spec.PropertyGetCommand{OFST: off}
	if size8 {
		pg.ATTRIB = spec.PropertySize8
	}
	cmd := pg.ToCommand()
	cpl, err := p.c.AdminCommand(&cmd, bus.Buffer{})
	if err != nil {
		p.c.markFailed(fmt.Errorf("%w: Property Get %#x: %w", ErrFailed, off, err))
		return ^uint64(0)
	}
	return uint64(cpl.DW0) | uint64(cpl.DW1)<<32
}

func (p fabricProperties) set(off uint32, v uint64, size8 bool) {
	ps := spec.PropertySetCommand{OFST: off, VALUE: v}
	if size8 {
		ps.ATTRIB = spec.PropertySize8
	}
	cmd := ps.ToCommand()
	if _, err := p.c.AdminCommand(&cmd, bus.Buffer{}); err != nil {
		p.c.markFailed(fmt.Errorf("%w: Property Set %#x: %w", ErrFailed, off, err))
	}
}

func (p fabricProperties) Read32(off uint32) uint32     { return uint32(p.get(off, false)) }
func (p fabricProperties) Write32(off uint32, v uint32) { p.set(off, uint64(v), false) }
func (p fabricProperties) Read64(off uint32) uint64     { return p.get(off, true) }
func (p fabricProperties) Write64(off uint32, v uint64) { p.set(off, v, true) }

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
	cfg := FabricQueueConfig{
		QID: q.id, Entries: int(q.size), Requests: nreq, CIDMask: q.cidMask(),
		InCapsuleData: adminInCapsuleData, MaxTransfer: q.maxTransfer,
	}
	if q.id == 0 {
		cfg.KeepAlive = q.ctrl.opts.KeepAlive
	} else {
		cfg.InCapsuleData = q.ctrl.inCapsuleData()
	}
	fq, err := q.ctrl.fabric.ConnectQueue(cfg)
	if err != nil {
		return fmt.Errorf("nvme: connecting %s queue %d: %w", q.ctrl.fabric.Name(), q.id, err)
	}
	q.fabric = fq
	return nil
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
	r := &q.reqs[idx]
	r.active, r.placed = false, false
	cb, arg := r.cb, r.arg
	r.cb, r.arg = nil, nil
	q.free = append(q.free, idx)
	q.stats.Completed++
	f.n++
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
	return n, nil
}
