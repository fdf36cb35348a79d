package nvme

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Options tune controller bring-up.
type Options struct {
	// AdminEntries is the admin queue size; 0 means 32.
	AdminEntries int
	// IOQueues is how many I/O queue pairs to ask for with Set Features Number of
	// Queues; 0 means 64. The controller may grant fewer.
	IOQueues int
	// AdminTimeout bounds each admin command; 0 means 10 s.
	AdminTimeout time.Duration
	// ReadyTimeout overrides CAP.TO for enable/disable waits when non-zero (tests).
	ReadyTimeout time.Duration
	// ShutdownTimeout bounds the wait for CSTS.SHST after a normal shutdown; 0 means
	// what the controller's Identify RTD3E (RTD3 entry latency) says, clamped to
	// [MinShutdownTimeout, MaxShutdownTimeout] as Linux does.
	ShutdownTimeout time.Duration
	// MaxTransfer caps the data transfer size when the controller reports no MDTS;
	// 0 means 1 MiB.
	MaxTransfer int
	// NoShutdownNotification makes Detach disable the controller (CC.EN=0) instead of
	// a normal shutdown notification (CC.SHN), as spdk_nvme_perf -N does.
	NoShutdownNotification bool
	// NoShadowDoorbell keeps the I/O queues on their doorbell registers even when the
	// controller offers shadow doorbells (Doorbell Buffer Config; shadowdb.go).
	NoShadowDoorbell bool
	// NoSQInCMB keeps the I/O submission queues in host memory even when the
	// controller memory buffer can hold them (spdk_nvme_perf -D; cmb.go).
	NoSQInCMB bool
	// BARs maps the controller's BARs besides BAR0, for its memory buffer. nil means
	// the Registers or the Allocator passed to Attach, if either implements it.
	BARs bus.BARMapper
	// KeepAlive is the keep alive timeout of a fabrics controller (Connect KATO); Keep
	// Alive commands go every half of it. 0 disables keep alive. PCIe ignores it.
	KeepAlive time.Duration
	// Quiescer stops the transport's DMA (PCIe: bus mastering off) during teardown after
	// a failure. nil means the Registers or the Allocator passed to Attach, if either
	// implements bus.Quiescer.
	Quiescer bus.Quiescer
	// Recovery: command timeouts, resets, retries, asynchronous events (docs/recovery.md).
	Recovery RecoveryOptions
}

func (o *Options) defaults() {
	if o.AdminEntries == 0 {
		o.AdminEntries = 32
	}
	if o.IOQueues == 0 {
		o.IOQueues = 64
	}
	if o.AdminTimeout == 0 {
		o.AdminTimeout = 10 * time.Second
	}
	if o.MaxTransfer == 0 {
		o.MaxTransfer = 1 << 20
	}
}

// Shutdown timeout bounds when Options.ShutdownTimeout is 0: the controller's RTD3E,
// clamped as Linux clamps it (its shutdown_timeout module parameter defaults to 5 s;
// the ceiling is 60 s). A controller reporting no RTD3E gets the minimum.
const (
	MinShutdownTimeout = 5 * time.Second
	MaxShutdownTimeout = 60 * time.Second
)

// maxMPSMIN is the largest CAP.MPSMIN nvmeperf drives: memory pages up to 64 KiB. Each
// queue and each request's PRP list pages are whole memory pages, so larger pages
// would cost more memory than they are worth.
const maxMPSMIN = 4

// Controller is an attached NVMe controller.
type Controller struct {
	regs     bus.Registers
	dma      bus.Allocator
	quiescer bus.Quiescer // the transport's DMA stop (bus mastering), if it has one
	opts     Options
	// fabric is the message-based transport (NVMe over Fabrics), nil for PCIe and sim;
	// regs is then Property Get/Set on the admin queue (fabric.go).
	fabric                       Fabric
	keepAliveStop, keepAliveDone chan struct{}

	cap         spec.CAP
	pageSize    int // memory page size in bytes (CC.MPS)
	vs          spec.VS
	ident       spec.IdentifyController
	maxTransfer int // bytes
	ioQueues    int // granted I/O queue pairs
	namespaces  []*Namespace

	adminMu sync.Mutex // admin commands come from any goroutine (setup, teardown)
	admin   *QPair
	scratch bus.Buffer // one page for identify/log data

	qidMu    sync.Mutex
	qids     []bool // qids[i] true when I/O queue i+1 is in use
	open     map[*QPair]struct{}
	detached bool

	failMu sync.Mutex
	failed error

	// DMA memory the controller may still reach (its queue could not be deleted, or the
	// controller failed) waits in deferred until the controller is disabled or shut
	// down, or the transport stopped its DMA; safe says that has happened.
	dmaMu    sync.Mutex
	deferred []bus.Buffer
	safe     bool

	rec recoveryState // timeouts, aborts, resets (recovery.go)
	aer aerState      // asynchronous events (aer.go)

	dbbuf dbbufState // shadow doorbells (shadowdb.go)
	cmb   cmbState   // submission queues in the controller memory buffer (cmb.go)

	fabricRec fabricRecovery // resets over fabrics (fabricrecovery.go)
}

// Attach brings up the controller behind regs: it disables it, sets up the admin
// queue, enables it, identifies it and its active namespaces, and negotiates the number
// of I/O queues. Every wait is bounded.
//
// Teardown after a failure calls the transport's bus.Quiescer (Options.Quiescer, or
// regs or dma if either implements it) after disabling the controller and before
// freeing DMA memory.
func Attach(regs bus.Registers, dma bus.Allocator, opts Options) (*Controller, error) {
	opts.defaults()
	c := &Controller{regs: regs, dma: dma, opts: opts, open: map[*QPair]struct{}{}, pageSize: bus.PageSize}
	if opts.Quiescer != nil {
		c.quiescer = opts.Quiescer
	} else if q, ok := regs.(bus.Quiescer); ok {
		c.quiescer = q
	} else if q, ok := dma.(bus.Quiescer); ok {
		c.quiescer = q
	}
	err := c.guard("enabling the controller", c.enable)
	if err == nil {
		err = c.guard("identifying the controller", c.identify)
	}
	if err == nil {
		err = c.setupShadowDoorbells() // shadowdb.go
	}
	if err != nil {
		// The controller may have been enabled with the admin queue: stop it before its
		// memory goes.
		return nil, errors.Join(err, c.teardown(false))
	}
	c.startAsyncEvents() // aer.go
	return c, nil
}

func (c *Controller) readyTimeout() time.Duration {
	if c.opts.ReadyTimeout > 0 {
		return c.opts.ReadyTimeout
	}
	to := time.Duration(c.cap.TO()) * 500 * time.Millisecond
	if to == 0 {
		to = 500 * time.Millisecond
	}
	return to
}

// waitReady polls CSTS until RDY equals want, failing on CFS, an all-ones read (device
// gone) or the timeout.
func (c *Controller) waitReady(want bool, what string) error {
	deadline := time.Now().Add(c.readyTimeout())
	sleep := time.Microsecond
	for {
		csts := spec.CSTS(c.regs.Read32(spec.RegCSTS))
		if csts == 0xFFFFFFFF {
			return fmt.Errorf("nvme: %s: %w: registers read as all ones (device removed or not responding)", what, ErrFailed)
		}
		if csts.CFS() {
			return fmt.Errorf("nvme: %s: %w: controller fatal status set (%v)", what, ErrFailed, csts)
		}
		if csts.RDY() == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nvme: %s: %w: CSTS.RDY stayed %t for %v (CAP.TO allows %v; %v)",
				what, ErrTimeout, !want, c.readyTimeout(), c.readyTimeout(), csts)
		}
		time.Sleep(sleep)
		if sleep < time.Millisecond {
			sleep *= 2
		}
	}
}

// enable performs the spec's initialization steps up to CSTS.RDY = 1
// (NVMe Base 2.0, section 3.5.1 "Memory-based Controller Initialization").
func (c *Controller) enable() error {
	c.cap = spec.CAP(bus.Read64(c.regs, spec.RegCAP))
	if c.cap == 0xFFFFFFFFFFFFFFFF {
		return fmt.Errorf("nvme: %w: CAP reads as all ones (device removed or BAR not mapped)", ErrFailed)
	}
	if err := c.checkCapabilities(); err != nil {
		return err
	}
	if err := c.disableFirst(); err != nil {
		return err
	}
	c.setupCMB() // cmb.go: before any queue exists; never fails the bring-up

	entries := c.opts.AdminEntries
	if max := int(c.cap.MQES()) + 1; entries > max {
		entries = max
	}
	if entries > 4096 {
		entries = 4096
	}
	c.maxTransfer = c.opts.MaxTransfer // until Identify tells
	admin, err := newQPair(c, 0, QPairOptions{Entries: entries, MaxTransfer: c.pageSize * 2})
	if err != nil {
		return err
	}
	c.admin = admin
	if c.scratch, err = c.dma.Alloc(pageSize); err != nil {
		return fmt.Errorf("nvme: allocating identify buffer: %w", err)
	}
	c.regs.Write32(spec.RegAQA, uint32(spec.MakeAQA(uint16(entries), uint16(entries))))
	bus.Write64(c.regs, spec.RegASQ, admin.sqMem.Addr)
	bus.Write64(c.regs, spec.RegACQ, admin.cqMem.Addr)
	c.regs.Write32(spec.RegCC, uint32(spec.MakeCC(true, 0, c.cap.MPSMIN(), spec.CCShutdownNone, spec.SQESizeLog, spec.CQESizeLog)))
	return c.waitReady(true, "enabling controller")
}

// disableFirst disables the controller before its bring-up. A controller with EN=1 but
// RDY=0 is still coming up: wait for it before disabling, as the spec requires.
func (c *Controller) disableFirst() error {
	cc := spec.CC(c.regs.Read32(spec.RegCC))
	if cc.EN() {
		if csts := spec.CSTS(c.regs.Read32(spec.RegCSTS)); !csts.RDY() && !csts.CFS() {
			if err := c.waitReady(true, "waiting for the controller to finish enabling before reset"); err != nil {
				return err
			}
		}
		c.regs.Write32(spec.RegCC, uint32(cc&^spec.CCEnable))
	}
	return c.waitReadyOff()
}

func (c *Controller) waitReadyOff() error {
	// A fatal controller may never clear RDY; the reset (EN=0) is what recovers it, so
	// only the RDY bit matters here.
	deadline := time.Now().Add(c.readyTimeout())
	for {
		csts := spec.CSTS(c.regs.Read32(spec.RegCSTS))
		if csts == 0xFFFFFFFF {
			return fmt.Errorf("nvme: disabling controller: %w: registers read as all ones", ErrFailed)
		}
		if !csts.RDY() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nvme: disabling controller: %w: CSTS.RDY stayed 1 for %v after CC.EN=0 (%v)", ErrTimeout, c.readyTimeout(), csts)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func (c *Controller) identify() error {
	if err := c.identifyInto(spec.CNSController, 0, unsafe.Pointer(&c.ident)); err != nil {
		return err
	}
	if c.ident.SQES&0xF > spec.SQESizeLog || c.ident.CQES&0xF > spec.CQESizeLog {
		return fmt.Errorf("nvme: controller requires SQ/CQ entries of 2^%d/2^%d bytes; nvmeperf uses 64/16", c.ident.SQES&0xF, c.ident.CQES&0xF)
	}
	if mt := c.ident.MaxTransferBytes(4096 << c.cap.MPSMIN()); mt > 0 {
		c.maxTransfer = int(min(mt, 1<<30))
	}
	if c.IsDiscovery() {
		return nil // no I/O queues, no namespaces: only the discovery log
	}
	// Number of queues: ask, and take what is granted.
	want := uint16(c.opts.IOQueues)
	cmd := spec.Command{CDW10: spec.FeatureNumberOfQueues, CDW11: spec.NumberOfQueues(want, want)}
	cmd.SetOpcodeCID(uint8(spec.AdminSetFeatures), 0)
	cpl, err := c.AdminCommand(&cmd, bus.Buffer{})
	if err != nil {
		return fmt.Errorf("nvme: setting the number of queues: %w", err)
	}
	nsq, ncq := spec.DecodeNumberOfQueues(cpl.DW0)
	granted := min(int(nsq), int(ncq), int(want))
	if granted < 1 {
		return fmt.Errorf("nvme: controller granted no I/O queues")
	}
	c.ioQueues = granted
	c.qids = make([]bool, granted)
	return c.identifyNamespaces()
}

func (c *Controller) identifyNamespaces() error {
	var ids []uint32
	var list spec.ActiveNamespaceList
	if err := c.identifyInto(spec.CNSActiveNamespaces, 0, unsafe.Pointer(&list)); err == nil {
		ids = list.IDs()
	} else {
		// Controllers before NVMe 1.1 lack CNS 02h: try every NSID up to NN.
		for id := uint32(1); id <= c.ident.NN && id <= 1024; id++ {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		ns := &Namespace{ctrl: c, id: id}
		if err := c.identifyInto(spec.CNSNamespace, id, unsafe.Pointer(&ns.ident)); err != nil {
			return fmt.Errorf("nvme: identifying namespace %d: %w", id, err)
		}
		if ns.ident.NSZE == 0 {
			continue // inactive
		}
		ns.fill()
		c.namespaces = append(c.namespaces, ns)
	}
	return nil
}

// identifyInto runs Identify with cns/nsid and copies the 4 KiB result to dst.
func (c *Controller) identifyInto(cns uint32, nsid uint32, dst unsafe.Pointer) error {
	cmd := spec.Command{NSID: nsid, CDW10: cns}
	cmd.SetOpcodeCID(uint8(spec.AdminIdentify), 0)
	c.adminMu.Lock()
	defer c.adminMu.Unlock()
	clear(c.scratch.Bytes)
	if _, err := c.adminLocked(&cmd, c.scratch.Slice(0, spec.IdentifyDataSize)); err != nil {
		return fmt.Errorf("nvme: identify (CNS %d, NSID %d): %w", cns, nsid, err)
	}
	copy(unsafe.Slice((*byte)(dst), spec.IdentifyDataSize), c.scratch.Bytes)
	return nil
}

// adminWaiter collects one admin completion.
type adminWaiter struct {
	done bool
	cpl  spec.Completion
}

func (w *adminWaiter) CommandDone(_ any, cpl *spec.Completion) { w.done, w.cpl = true, *cpl }

// AdminCommand submits cmd on the admin queue and waits for it (bounded by
// Options.AdminTimeout). data, when non-empty, is DMA memory for the command's data.
// A non-success status is returned as a *StatusError along with the completion.
func (c *Controller) AdminCommand(cmd *spec.Command, data bus.Buffer) (spec.Completion, error) {
	c.adminMu.Lock()
	defer c.adminMu.Unlock()
	return c.adminLocked(cmd, data)
}

func (c *Controller) adminLocked(cmd *spec.Command, data bus.Buffer) (cpl spec.Completion, err error) {
	if err := c.Err(); err != nil {
		return spec.Completion{}, err
	}
	err = c.guard(spec.AdminOpcode(cmd.Opcode()).String(), func() error {
		cpl, err = c.adminWait(cmd, data)
		return err
	})
	return cpl, err
}

func (c *Controller) adminWait(cmd *spec.Command, data bus.Buffer) (spec.Completion, error) {
	var w adminWaiter
	name := spec.AdminOpcode(cmd.Opcode())
	if err := c.admin.Submit(cmd, data, &w, nil); err != nil {
		return spec.Completion{}, fmt.Errorf("nvme: submitting %s: %w", name, err)
	}
	deadline := time.Now().Add(c.opts.AdminTimeout)
	for spins := 0; !w.done; spins++ {
		if _, err := c.admin.Poll(); err != nil {
			c.markFailed(err)
			return spec.Completion{}, fmt.Errorf("nvme: %s: %w", name, err)
		}
		if w.done {
			break
		}
		if spins%64 == 63 {
			if err := c.checkAlive(); err != nil {
				c.admin.fail(err)
				return spec.Completion{}, fmt.Errorf("nvme: %s: %w", name, err)
			}
			if time.Now().After(deadline) {
				err := fmt.Errorf("nvme: %s: %w after %v waiting for its completion", name, ErrTimeout, c.opts.AdminTimeout)
				c.markFailed(err)
				c.admin.fail(err)
				return spec.Completion{}, err
			}
			time.Sleep(10 * time.Microsecond)
		}
	}
	if st := w.cpl.StatusField(); !st.OK() {
		return w.cpl, StatusErrorFor(true, cmd, st)
	}
	return w.cpl, nil
}

// checkAlive reads CSTS and reports a failed controller.
func (c *Controller) checkAlive() error {
	if err := c.Err(); err != nil {
		return err
	}
	if c.fabric != nil {
		// A Property Get would queue behind the admin command being waited for; a
		// fabric's failures show as connection errors and keep alive failures.
		return nil
	}
	var csts spec.CSTS
	if err := safeRead(func() { csts = spec.CSTS(c.regs.Read32(spec.RegCSTS)) }); err != nil {
		return c.markFailed(err) // already ErrFailed: wrapping again would say it twice
	}
	if c.rec.resetting.Load() {
		return nil // recovery.go: a reset is under way; what CSTS says now is its doing
	}
	switch {
	case csts == 0xFFFFFFFF:
		return c.markFailed(fmt.Errorf("%w: registers read as all ones (device removed or not responding)", ErrFailed))
	case csts.CFS():
		return c.markFailed(fmt.Errorf("%w: controller fatal status (%v)", ErrFailed, csts))
	case !csts.RDY():
		return c.markFailed(fmt.Errorf("%w: controller is no longer ready (%v)", ErrFailed, csts))
	}
	return nil
}

// faultError turns a recovered panic into a controller failure when it is a memory
// fault on a register access (debug.SetPanicOnFault), and re-panics otherwise: a bug
// or a panicking callback must not pass for a dead device.
func faultError(p any, what string) error {
	f, isFault := p.(interface{ Addr() uintptr })
	if !isFault {
		panic(p)
	}
	// The address, not the runtime's panic text: "invalid memory address or nil
	// pointer dereference" reads like a crash of nvmeperf, not a device that went away.
	return fmt.Errorf("%w: %s: register access faulted at %#x (device removed?)", ErrFailed, what, f.Addr())
}

// guard runs f with memory faults turned into errors, for the control path (bring-up,
// admin commands, teardown), which may touch registers of a device that is gone.
func (c *Controller) guard(what string, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = c.markFailed(faultError(p, what))
		}
	}()
	return f()
}

func safeRead(f func()) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = faultError(p, "reading a register")
		}
	}()
	f()
	return nil
}

func (c *Controller) markFailed(err error) error {
	c.failMu.Lock()
	defer c.failMu.Unlock()
	if c.failed == nil {
		c.failed = err
	}
	return c.failed
}

// Err is the failure that stopped the controller, if any.
func (c *Controller) Err() error {
	c.failMu.Lock()
	defer c.failMu.Unlock()
	return c.failed
}

// CAP is the controller's capabilities register as read at attach.
func (c *Controller) CAP() spec.CAP { return c.cap }

// Version is the controller's VS register.
func (c *Controller) Version() spec.VS { return c.vs }

// Identify is the Identify Controller data.
func (c *Controller) Identify() *spec.IdentifyController { return &c.ident }

// MaxTransfer is the largest data transfer in bytes (from MDTS, or Options.MaxTransfer
// when the controller sets no limit).
func (c *Controller) MaxTransfer() int { return c.maxTransfer }

// IOQueues is the number of I/O queue pairs the controller granted.
func (c *Controller) IOQueues() int { return c.ioQueues }

// PageSize is the memory page size in bytes the controller runs with (CC.MPS): 4096
// unless CAP.MPSMIN asks for more. PRP entries after the first are page aligned.
func (c *Controller) PageSize() int { return c.pageSize }

// ShutdownTimeout is how long Detach waits for a normal shutdown to complete:
// Options.ShutdownTimeout, or else Identify RTD3E clamped to [MinShutdownTimeout,
// MaxShutdownTimeout].
func (c *Controller) ShutdownTimeout() time.Duration {
	if c.opts.ShutdownTimeout > 0 {
		return c.opts.ShutdownTimeout
	}
	rtd3e := time.Duration(c.ident.RTD3E) * time.Microsecond
	return min(max(rtd3e, MinShutdownTimeout), MaxShutdownTimeout)
}

// MaxQueueEntries is CAP.MQES+1.
func (c *Controller) MaxQueueEntries() int { return int(c.cap.MQES()) + 1 }

// Namespaces are the active namespaces in NSID order.
func (c *Controller) Namespaces() []*Namespace { return c.namespaces }

// Namespace returns the active namespace nsid, or nil.
func (c *Controller) Namespace(nsid uint32) *Namespace {
	for _, ns := range c.namespaces {
		if ns.id == nsid {
			return ns
		}
	}
	return nil
}

// NewIOQPair creates an I/O completion queue and then its submission queue (the order
// the spec requires) and returns the pair, owned by the calling goroutine from now on.
func (c *Controller) NewIOQPair(opts QPairOptions) (*QPair, error) {
	c.qidMu.Lock()
	qid := 0
	for i, used := range c.qids {
		if !used {
			qid = i + 1
			c.qids[i] = true
			break
		}
	}
	c.qidMu.Unlock()
	if qid == 0 {
		return nil, fmt.Errorf("nvme: all %d I/O queue pairs granted by the controller are in use", c.ioQueues)
	}
	release := func() {
		c.qidMu.Lock()
		c.qids[qid-1] = false
		c.qidMu.Unlock()
	}
	q, err := newQPair(c, uint16(qid), opts)
	if err != nil {
		release()
		return nil, err
	}
	if c.fabric != nil { // connected by newQPair: no queues to create
		c.qidMu.Lock()
		c.open[q] = struct{}{}
		c.qidMu.Unlock()
		return q, nil
	}
	create := spec.Command{
		CDW10: uint32(qid) | (q.size-1)<<16,
		CDW11: spec.QueuePhysicallyContiguous,
		PRP1:  q.cqMem.Addr,
	}
	create.SetOpcodeCID(uint8(spec.AdminCreateIOCQ), 0)
	if _, err := c.AdminCommand(&create, bus.Buffer{}); err != nil {
		// A command that failed with a status created nothing; one that got no answer
		// may have.
		q.freeMemory(c.Err() != nil)
		release()
		return nil, fmt.Errorf("nvme: creating I/O CQ %d (%d entries): %w", qid, q.size, err)
	}
	create = spec.Command{
		CDW10: uint32(qid) | (q.size-1)<<16,
		CDW11: spec.QueuePhysicallyContiguous | uint32(qid)<<16,
		PRP1:  q.sqMem.Addr,
	}
	create.SetOpcodeCID(uint8(spec.AdminCreateIOSQ), 0)
	if _, err := c.AdminCommand(&create, bus.Buffer{}); err != nil {
		cqErr := c.deleteQueue(spec.AdminDeleteIOCQ, uint16(qid))
		q.freeMemory(cqErr != nil || c.Err() != nil)
		release()
		return nil, fmt.Errorf("nvme: creating I/O SQ %d (%d entries): %w", qid, q.size, err)
	}
	c.qidMu.Lock()
	c.open[q] = struct{}{}
	c.qidMu.Unlock()
	return q, nil
}

func (c *Controller) deleteQueue(op spec.AdminOpcode, qid uint16) error {
	cmd := spec.Command{CDW10: uint32(qid)}
	cmd.SetOpcodeCID(uint8(op), 0)
	_, err := c.AdminCommand(&cmd, bus.Buffer{})
	return err
}

// FreeIOQPair deletes the submission queue and then the completion queue and releases
// their memory. Outstanding commands are abandoned. When the queues cannot be deleted
// (the controller failed) the memory is kept until Detach has disabled the controller.
func (c *Controller) FreeIOQPair(q *QPair) error {
	c.qidMu.Lock()
	if _, ok := c.open[q]; !ok {
		c.qidMu.Unlock()
		return fmt.Errorf("nvme: queue pair %d is not open on this controller", q.id)
	}
	delete(c.open, q)
	c.qidMu.Unlock()
	var err error
	deleted := false
	if c.Err() == nil && c.fabric == nil {
		if e := c.deleteQueue(spec.AdminDeleteIOSQ, q.id); e != nil {
			err = fmt.Errorf("nvme: deleting I/O SQ %d: %w", q.id, e)
		} else if e := c.deleteQueue(spec.AdminDeleteIOCQ, q.id); e != nil {
			err = fmt.Errorf("nvme: deleting I/O CQ %d: %w", q.id, e)
		} else {
			deleted = true
		}
	}
	q.freeMemory(!deleted)
	if q.failed == nil {
		q.failed = fmt.Errorf("nvme: queue pair %d was freed", q.id)
	}
	c.qidMu.Lock()
	c.qids[q.id-1] = false
	c.qidMu.Unlock()
	return err
}

// Detach deletes every I/O queue pair still open, sends a normal shutdown (CC.SHN) and
// waits for CSTS.SHST to report it complete (ShutdownTimeout), then frees the admin
// queue. If the controller failed, or a queue or the shutdown could not be completed,
// it disables the controller (CC.EN=0, waiting for CSTS.RDY=0 within CAP.TO) and stops
// the transport's DMA before any memory the controller could reach is freed.
// A second Detach does nothing.
func (c *Controller) Detach() error {
	c.stopFabricRecovery() // fabricrecovery.go
	c.stopAsyncEvents()    // aer.go
	c.qidMu.Lock()
	if c.detached {
		c.qidMu.Unlock()
		return nil
	}
	c.detached = true
	c.stopKeepAlive()
	open := make([]*QPair, 0, len(c.open))
	for q := range c.open {
		open = append(open, q)
	}
	c.qidMu.Unlock()
	var errs []error
	for _, q := range open {
		if err := c.FreeIOQPair(q); err != nil {
			errs = append(errs, err)
		}
	}
	shutDown := false
	if c.Err() == nil {
		what, stop := "shutting down", c.shutdown
		if c.opts.NoShutdownNotification {
			// spdk_nvme_perf -N: a disabled controller touches no host memory either.
			what, stop = "disabling", c.disableWait
		}
		if err := c.guard(what, stop); err != nil {
			errs = append(errs, err)
		} else {
			shutDown = true
		}
	}
	errs = append(errs, c.teardown(shutDown))
	if c.fabric != nil {
		errs = append(errs, c.fabric.Close())
	}
	return errors.Join(errs...)
}

// teardown frees the admin queue and every deferred buffer. Unless the controller
// completed a normal shutdown (it then touches no host memory), it first disables the
// controller and stops the transport's DMA. Memory the controller might still reach,
// because neither worked, is not freed (the transport frees it when it closes).
func (c *Controller) teardown(shutDown bool) error {
	var err error
	if shutDown || c.fabric != nil {
		// A fabric controller reaches no host memory: closing its admin connection
		// ends the association.
		c.markSafe()
	} else if c.admin != nil || c.pendingDMA() {
		err = c.quiesce()
	}
	if c.admin != nil {
		c.admin.freeMemory(true)
		c.admin = nil
	}
	if c.scratch.Len() > 0 {
		c.freeDMA(c.scratch, true)
		c.scratch = bus.Buffer{}
	}
	c.freeShadowDoorbells(true) // shadowdb.go
	c.dmaMu.Lock()
	defer c.dmaMu.Unlock()
	if n := len(c.deferred); n > 0 && !c.safe {
		return errors.Join(err, fmt.Errorf("nvme: %d DMA buffers are left allocated: the controller could not be disabled and the transport cannot stop its DMA", n))
	}
	return err
}

// quiesce stops the controller from reaching host memory: CC.EN=0 and a wait for
// CSTS.RDY=0 (bounded by CAP.TO), then the transport's DMA stop (PCIe bus mastering
// off), which also covers a controller that would not disable. When either worked, the
// deferred buffers are freed.
func (c *Controller) quiesce() error {
	disabled := c.guard("disabling the controller", func() error {
		cc := spec.CC(c.regs.Read32(spec.RegCC))
		if cc.EN() {
			c.regs.Write32(spec.RegCC, uint32(cc&^spec.CCEnable))
		}
		return c.waitReadyOff()
	})
	var stopped error = errors.New("no DMA stop")
	if c.quiescer != nil {
		if stopped = c.quiescer.StopDMA(); stopped != nil {
			stopped = fmt.Errorf("nvme: stopping the transport's DMA: %w", stopped)
		}
	}
	if disabled == nil || stopped == nil {
		c.markSafe()
		return nil
	}
	if c.quiescer == nil {
		return disabled
	}
	return errors.Join(disabled, stopped)
}

// markSafe records that the controller no longer reaches host memory and frees what
// was deferred.
func (c *Controller) markSafe() {
	c.dmaMu.Lock()
	c.safe = true
	deferred := c.deferred
	c.deferred = nil
	c.dmaMu.Unlock()
	for _, b := range deferred {
		_ = c.dma.Free(b)
	}
}

func (c *Controller) pendingDMA() bool {
	c.dmaMu.Lock()
	defer c.dmaMu.Unlock()
	return len(c.deferred) > 0
}

// freeDMA frees b now, or, when the controller may still reach it (deviceMayUse) and
// has not been stopped, keeps it for teardown to free after the controller is stopped.
func (c *Controller) freeDMA(b bus.Buffer, deviceMayUse bool) {
	c.dmaMu.Lock()
	if deviceMayUse && !c.safe {
		c.deferred = append(c.deferred, b)
		c.dmaMu.Unlock()
		return
	}
	c.dmaMu.Unlock()
	_ = c.dma.Free(b)
}

// allocDMA returns zeroed DMA memory of size bytes starting on a memory page boundary
// of the controller (device address), and the allocation behind it to free.
func (c *Controller) allocDMA(size int) (buf, raw bus.Buffer, err error) {
	ps := uint64(c.pageSize)
	if ps <= bus.PageSize {
		raw, err = c.dma.Alloc(size)
		return raw, raw, err
	}
	if raw, err = c.dma.Alloc(size + int(ps) - bus.PageSize); err != nil {
		return bus.Buffer{}, bus.Buffer{}, err
	}
	off := int((ps - raw.Addr%ps) % ps)
	return raw.Slice(off, size), raw, nil
}

func (c *Controller) shutdown() error {
	cc := spec.CC(c.regs.Read32(spec.RegCC))
	cc = cc&^(0x3<<14) | spec.CC(spec.CCShutdownNormal)<<14
	c.regs.Write32(spec.RegCC, uint32(cc))
	timeout := c.ShutdownTimeout()
	deadline := time.Now().Add(timeout)
	for {
		csts := spec.CSTS(c.regs.Read32(spec.RegCSTS))
		if csts == 0xFFFFFFFF {
			return fmt.Errorf("nvme: shutdown: %w: registers read as all ones", ErrFailed)
		}
		if csts.SHST() == spec.ShutdownStatusComplete {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nvme: shutdown: %w: CSTS.SHST did not report complete within %v (%v)", ErrTimeout, timeout, csts)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// disableWait clears CC.EN and waits for CSTS.RDY to clear: a detach without a
// shutdown notification.
func (c *Controller) disableWait() error {
	cc := spec.CC(c.regs.Read32(spec.RegCC))
	c.regs.Write32(spec.RegCC, uint32(cc&^spec.CCEnable))
	return c.waitReadyOff()
}

// checkCapabilities reads VS and checks, from CAP, that nvmeperf can drive the
// controller (the NVM command set, a memory page size it supports), then picks the
// smallest memory page the controller accepts (CAP.MPSMIN). PCIe and fabrics share it.
func (c *Controller) checkCapabilities() error {
	c.vs = spec.VS(c.regs.Read32(spec.RegVS))
	if c.cap.CSS()&1 == 0 {
		return fmt.Errorf("nvme: controller does not support the NVM command set (%v)", c.cap)
	}
	// The memory page is the smallest the controller accepts (CAP.MPSMIN).
	if c.cap.MPSMIN() > maxMPSMIN || c.cap.MPSMIN() > c.cap.MPSMAX() {
		return fmt.Errorf("nvme: controller's smallest memory page is %d bytes; nvmeperf drives pages of 4 KiB to %d KiB (%v)",
			uint64(4096)<<c.cap.MPSMIN(), 4<<maxMPSMIN, c.cap)
	}
	c.pageSize = bus.PageSize << c.cap.MPSMIN()
	return nil
}
