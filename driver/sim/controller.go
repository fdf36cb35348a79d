// Package sim is a simulated NVMe controller living in process memory. It sits behind
// the same seams as a PCIe device (driver/bus: BAR0 registers and DMA memory), so the
// driver code that runs against it is the code that runs against hardware.
//
// A device goroutine, locked to its OS thread and optionally pinned to Config.CPUs,
// polls CC and the doorbells, fetches commands, moves data through PRPs it translates
// from simulated bus addresses, and posts completions with phase tags. It backs off to
// sleeping when idle so an unused controller costs (almost) no CPU.
//
// In inline mode (Config.Inline) there is no device goroutine: the host's register
// writes run the model on the writing thread (inline.go), so one core runs the whole
// I/O path.
package sim

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Identity the simulated controller reports in Identify Controller.
const (
	// VendorID is 0xFFFE: not a vendor any real NVMe device reports, so the simulator
	// cannot be taken for hardware.
	VendorID     = 0xFFFE
	SerialNumber = "NVMEPERF-SIM-0001"
	ModelNumber  = "nvmeperf simulated controller"
	Firmware     = "SIM1.0"
)

// Stats counts what the controller did since New. All counters only grow except
// StoreBytes.
type Stats struct {
	AdminCommands    uint64 // admin commands fetched
	IOCommands       uint64 // I/O commands fetched
	Reads, Writes    uint64 // successful read and write commands
	ReadBytes        uint64 // bytes of successful reads
	WriteBytes       uint64 // bytes of successful writes
	Completions      uint64 // completion entries posted
	Errors           uint64 // completions with a non-success status
	InvalidDoorbells uint64 // doorbell values beyond the queue size (a real drive posts an async event)
	CQFullStalls     uint64 // times fetching stopped because a CQ had no room
	Resets           uint64 // CC.EN 1 -> 0 transitions
	StoreBytes       uint64 // bytes of written data the store holds now
	Violations       uint64 // spec violations by the host (see Violations)
	CMBSQs           uint64 // I/O submission queues created in the controller memory buffer (cmb.go)
}

type statCounters struct {
	adminCommands, ioCommands, reads, writes, readBytes, writeBytes atomic.Uint64
	completions, errors, invalidDoorbells, cqFullStalls, resets     atomic.Uint64
}

// Controller is a simulated NVMe controller.
type Controller struct {
	cfg    Config
	barMem []byte
	// regs is the device's view of BAR0; hostRegs, handed to the host, is the same
	// memory with every access checked (hostView).
	regs       *bus.MMIO
	hostRegs   *bus.MMIO
	inlineRegs *inlineRegisters // the host's BAR0 in inline mode, nil otherwise
	dma        *dmaSpace
	faults     Faults
	stats      statCounters
	violations violationLog

	stop    atomic.Bool
	stopped atomic.Bool
	epoch   atomic.Uint64
	done    chan struct{}
	closeMu sync.Mutex
	closed  bool

	// Inline mode: mu serializes the controller-level model (CC, CSTS, the admin
	// queue) between the host goroutines that touch registers; ioReady says, without
	// the lock, whether I/O queues may be serviced (see inline.go).
	inline  bool
	mu      sync.Mutex
	ioReady atomic.Bool

	// Everything below belongs to the device thread (inline mode: to whoever holds mu,
	// except I/O queues, which belong to the thread ringing their doorbells).
	clockBase   time.Time
	ccSeen      spec.CC
	csts        spec.CSTS
	enabled     bool   // CC.EN seen as 1 and the configuration was good
	pageSize    uint64 // memory page size CC.MPS selected at enable
	readyAt     int64  // when RDY goes to 1 (0 = no transition pending)
	unreadyAt   int64  // when RDY goes back to 0 after a reset
	shutdownAt  int64  // when SHST goes to complete
	fatal       bool
	maxQID      uint16 // highest I/O queue ID allowed (Number of Queues)
	sqs         []*submissionQueue
	cqs         []*completionQueue
	active      []*submissionQueue // admin SQ first, then I/O SQs
	timers      timerHeap
	aers        int // Asynchronous Event Requests held (never completed: no events happen)
	features    [256]uint32
	segs        [][]byte // PRP walk output, sized for the largest transfer
	adminCache  regionCache
	maxXfer     uint64 // cfg.maxTransfer(), computed once
	scratch     []byte // admin data staging
	identCtrl   []byte
	namespaces  []*namespace
	nand        *nandModel
	fatalTimer  *time.Timer // fatalafter fault
	removeTimer *time.Timer // removeafter fault
	removed     bool        // Remove was called: BAR0 is inaccessible

	rec recoveryState // held commands and recovery counters (recovery.go)
	cmb cmbState      // controller memory buffer (cmb.go)
	db  dbbuf         // shadow doorbell buffers (shadowdb.go)
}

// New validates cfg, maps BAR0 and the data store, and starts the device thread.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.CPUs = append([]int(nil), cfg.CPUs...)
	barSize := spec.RegDoorbellBase + 2*(cfg.IOQueues+1)*int(spec.DoorbellStride(cfg.DSTRD))
	barSize = (barSize + bus.PageSize - 1) &^ (bus.PageSize - 1)
	bar, err := unix.Mmap(-1, 0, barSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("sim: mapping %d-byte BAR0: %w", barSize, err)
	}
	regs, err := bus.NewMMIO(bar)
	if err != nil {
		_ = unix.Munmap(bar)
		return nil, fmt.Errorf("sim: BAR0: %w", err)
	}
	hostRegs, _ := bus.NewMMIO(bar) // cannot fail where regs did not
	c := &Controller{
		cfg:       cfg,
		barMem:    bar,
		regs:      regs,
		hostRegs:  hostRegs,
		dma:       newDMASpace(),
		pageSize:  bus.PageSize << cfg.MPSMIN,
		done:      make(chan struct{}),
		clockBase: time.Now(),
		maxQID:    uint16(cfg.IOQueues),
		sqs:       make([]*submissionQueue, cfg.IOQueues+1),
		cqs:       make([]*completionQueue, cfg.IOQueues+1),
		scratch:   make([]byte, spec.IdentifyDataSize),
	}
	c.maxXfer = cfg.maxTransfer()
	c.segs = make([][]byte, 0, cfg.maxTransfer()/bus.PageSize+2)
	keep := cfg.storesData()
	for i := 1; i <= cfg.Namespaces; i++ {
		ns, err := newNamespace(uint32(i), &cfg, keep)
		if err != nil {
			c.releaseMemory()
			return nil, err
		}
		c.namespaces = append(c.namespaces, ns)
	}
	if cfg.Model == ModelNAND {
		c.nand = newNANDModel(cfg.NAND)
	}
	c.identCtrl = c.buildIdentifyController()
	c.features[spec.FeatureNumberOfQueues] = spec.NumberOfQueues(uint16(cfg.IOQueues), uint16(cfg.IOQueues))
	c.features[spec.FeatureTemperature] = 343 // over-temperature threshold, kelvins
	// Memory pages from MPSMIN up to 64 KiB, as real controllers offer a range.
	mpsmax := max(cfg.MPSMIN, maxMPSMIN)
	regs.Write64(spec.RegCAP, uint64(spec.MakeCAP(cfg.MQES, true, cfg.Timeout, cfg.DSTRD, 1, cfg.MPSMIN, mpsmax)))
	regs.Write32(spec.RegVS, uint32(spec.MakeVS(1, 4, 0)))
	if err := c.initCMB(); err != nil { // cmb.go
		c.releaseMemory()
		return nil, err
	}
	c.dma.bars = c.MapBAR
	hostRegs.SetObserver(hostView{c})
	c.dma.queueFree = c.queueMemoryFreed
	if cfg.Inline {
		// No device thread: the model runs inside the host's register accesses, so once
		// an access has returned the device holds no translation.
		c.inline = true
		c.faults.inline = true
		c.inlineRegs = &inlineRegisters{c: c, bar: regs}
		c.dma.quiesce = func() {}
		close(c.done)
		if err := c.armFaults(); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	c.dma.quiesce = waitEpoch(&c.epoch, &c.stopped)

	started := make(chan error, 1)
	go c.run(started)
	if err := <-started; err != nil {
		<-c.done
		c.releaseMemory()
		return nil, err
	}
	if err := c.armFaults(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Registers is BAR0: controller registers and the doorbells of every queue. Accesses
// through its Read32/Write32 (and so Read64/Write64) are checked against the spec's
// register rules (see Violations). It is a *bus.MMIO (threaded mode: drivers ring
// doorbells through pointers, as on PCIe) or, in inline mode, registers whose writes
// run the controller model on the calling thread.
func (c *Controller) Registers() bus.Registers {
	if c.inline {
		return c.inlineRegs
	}
	return c.hostRegs
}

// Allocator hands out DMA memory the device can reach. Buffers become invalid at Close.
func (c *Controller) Allocator() bus.Allocator { return c.dma }

// Faults is the fault injection control.
func (c *Controller) Faults() *Faults { return &c.faults }

// Config is the configuration the controller runs with.
func (c *Controller) Config() Config {
	cfg := c.cfg
	cfg.CPUs = append([]int(nil), cfg.CPUs...)
	return cfg
}

// Stats returns the counters; safe to call at any time.
func (c *Controller) Stats() Stats {
	s := Stats{
		AdminCommands:    c.stats.adminCommands.Load(),
		IOCommands:       c.stats.ioCommands.Load(),
		Reads:            c.stats.reads.Load(),
		Writes:           c.stats.writes.Load(),
		ReadBytes:        c.stats.readBytes.Load(),
		WriteBytes:       c.stats.writeBytes.Load(),
		Completions:      c.stats.completions.Load(),
		Errors:           c.stats.errors.Load(),
		InvalidDoorbells: c.stats.invalidDoorbells.Load(),
		CQFullStalls:     c.stats.cqFullStalls.Load(),
		Resets:           c.stats.resets.Load(),
		Violations:       c.violations.total.Load(),
		CMBSQs:           c.cmb.sqs.Load(),
	}
	for _, ns := range c.namespaces {
		s.StoreBytes += uint64(ns.stored.Load()) * storePage
	}
	return s
}

// Close stops the device thread and unmaps BAR0, the store and all DMA memory; buffers
// from Allocator must not be used afterwards. Closing twice is harmless.
func (c *Controller) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.fatalTimer != nil {
		c.fatalTimer.Stop()
	}
	if c.removeTimer != nil {
		c.removeTimer.Stop()
	}
	c.stopDevice()
	return c.releaseMemory()
}

// Remove simulates surprise removal (hot unplug): the device thread stops and BAR0
// becomes inaccessible, so every register access by the host faults, as when a PCIe
// device is pulled from its slot. The mapping stays reserved (PROT_NONE) so that no
// other mapping can take its addresses. DMA memory stays usable: it is the host's.
// Close still releases everything.
func (c *Controller) Remove() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed || c.removed {
		return nil
	}
	c.removed = true
	c.stopDevice()
	if err := unix.Mprotect(c.barMem, unix.PROT_NONE); err != nil {
		return fmt.Errorf("sim: remove: protecting BAR0: %w", err)
	}
	return nil
}

// stopDevice stops the device thread, or in inline mode waits out a register access
// running the controller-level model and makes later ones do nothing.
func (c *Controller) stopDevice() {
	c.stop.Store(true)
	<-c.done
	if c.inline {
		c.mu.Lock()
		c.stopped.Store(true)
		c.ioReady.Store(false)
		c.mu.Unlock()
	}
}

func (c *Controller) releaseMemory() error {
	errs := []error{c.dma.closeAll(), c.releaseCMB()}
	for _, ns := range c.namespaces {
		errs = append(errs, ns.close())
	}
	if c.barMem != nil {
		if err := unix.Munmap(c.barMem); err != nil {
			errs = append(errs, fmt.Errorf("sim: close: unmapping BAR0: %w", err))
		}
		c.barMem = nil
	}
	return errors.Join(errs...)
}

// now is the controller clock in nanoseconds.
func (c *Controller) now() int64 { return int64(time.Since(c.clockBase)) }

// Back-off of the device loop: after idleSpins empty passes it sleeps, doubling from
// minSleep to maxSleep, so an idle controller costs almost nothing yet a busy one reacts
// within microseconds. The first quietSpins empty passes only spin: between the
// batches of a busy host the gap is short, and yielding there (runtime.Gosched on a
// thread-locked goroutine hands the thread off through futex wake-ups) costs more than
// a batch of commands. Past them the loop yields every yieldEvery passes, which gives
// the core to the worker when cores are oversubscribed and lets the host goroutine run
// at all with a single P (GOMAXPROCS=1, as testing.AllocsPerRun sets).
//
// While the host has completions it has not consumed yet, it is busy (or was
// descheduled) in the middle of a batch and will ring again soon: the loop keeps
// spinning for up to hostBusySpin since its last work instead of sleeping, because a
// sleep of up to maxSleep there stalls a host at full queue depth for that long (on an
// oversubscribed machine that was most of a one-worker run's time).
const (
	idleSpins    = 2000
	quietSpins   = 256
	yieldEvery   = 64
	minSleep     = time.Microsecond
	maxSleep     = time.Millisecond
	hostBusySpin = 2 * time.Millisecond
)

func (c *Controller) run(started chan<- error) {
	defer close(c.done)
	defer c.stopped.Store(true)
	// The thread stays locked until the goroutine exits, which ends the thread, so its
	// changed affinity and timer slack never leak to other goroutines.
	runtime.LockOSThread()
	if len(c.cfg.CPUs) > 0 {
		var set unix.CPUSet
		for _, cpu := range c.cfg.CPUs {
			set.Set(cpu)
		}
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			started <- fmt.Errorf("sim: pinning device thread to CPUs %v: %w", c.cfg.CPUs, err)
			return
		}
	}
	// Fine timer slack makes the short back-off sleeps (and nand timing) accurate.
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
	started <- nil

	idle := 0
	sleep := minSleep
	onlyP := false
	var busySince time.Time // first idle look that found the host mid-batch, since the last work
	hostBusy := false
	for !c.stop.Load() {
		c.epoch.Add(1)
		if c.step() > 0 {
			idle = 0
			sleep = minSleep
			busySince, hostBusy = time.Time{}, false
			continue
		}
		idle++
		if idle == 1 {
			onlyP = runtime.GOMAXPROCS(0) == 1
		}
		if idle < idleSpins {
			if idle%yieldEvery == 0 && (idle >= quietSpins || onlyP) {
				runtime.Gosched()
			}
			continue
		}
		if !hostBusy || idle%yieldEvery == 0 {
			// Is the host mid-batch? Looked at before each sleep, and once per
			// yieldEvery passes while spinning for it (the clock read is not free).
			hostBusy = false
			if c.hostHasCompletions() {
				now := time.Now()
				if busySince.IsZero() {
					busySince = now
				}
				hostBusy = now.Sub(busySince) < hostBusySpin
			}
		}
		if hostBusy {
			if idle%yieldEvery == 0 {
				runtime.Gosched()
			}
			continue
		}
		d := sleep
		if len(c.timers) > 0 {
			wait := time.Duration(c.timers[0].due - c.now())
			if wait < 20*time.Microsecond {
				continue // due soon: keep spinning
			}
			d = min(d, wait-10*time.Microsecond)
		}
		ts := unix.NsecToTimespec(int64(d))
		_ = unix.Nanosleep(&ts, nil) // EINTR just ends the nap early
		sleep = min(sleep*2, maxSleep)
	}
}

// hostHasCompletions reports whether an I/O CQ holds completions the host has not
// consumed (its head doorbell is behind the tail).
func (c *Controller) hostHasCompletions() bool {
	for _, sq := range c.active {
		if sq.id != 0 && sq.cq.headValue() != sq.cq.tail { // shadowdb.go
			return true
		}
	}
	return false
}

// step is one pass of the device loop; it returns how much work it did.
func (c *Controller) step() int {
	work := c.control()
	if !c.serviceable() || c.faults.armed.Load()&faultFreeze != 0 {
		return work
	}
	for _, sq := range c.active {
		work += c.serviceSQ(sq, fetchBurst)
	}
	if len(c.timers) > 0 {
		work += c.serviceTimers()
	}
	return work
}

// serviceable reports whether the controller executes commands: enabled, ready, not
// failed, not shutting down or shut down.
func (c *Controller) serviceable() bool {
	return c.enabled && c.readyAt == 0 && !c.fatal && c.shutdownAt == 0 && c.csts.SHST() != spec.ShutdownStatusComplete
}

func (c *Controller) setCSTS(s spec.CSTS) {
	c.csts = s
	c.regs.Write32(spec.RegCSTS, uint32(s))
}

// control follows CC, timed state changes and the register-level faults.
func (c *Controller) control() int {
	work := 0
	armed := c.faults.armed.Load()
	if armed&faultAsyncEvent != 0 && c.enabled && c.readyAt == 0 && !c.fatal {
		work += c.deliverAsyncEvents() // recovery.go
	}
	if armed&faultFatal != 0 {
		c.faults.armed.And(^faultFatal)
		c.fatal = true
		c.setCSTS(c.csts | spec.CSTSFatal)
		work++
	}
	cc := spec.CC(c.regs.Read32(spec.RegCC))
	if cc != c.ccSeen {
		prev := c.ccSeen
		c.ccSeen = cc
		work++
		switch {
		case cc.EN() && !prev.EN():
			c.enable(cc)
		case !cc.EN() && prev.EN():
			c.reset()
		}
		if cc.EN() && c.enabled && cc.SHN() != spec.CCShutdownNone && prev.SHN() == spec.CCShutdownNone {
			c.setCSTS(c.csts.WithSHST(spec.ShutdownStatusOccurring))
			c.shutdownAt = c.now() + max(int64(c.cfg.ShutdownDelay), 1)
		}
	}
	if c.readyAt != 0 && c.faults.armed.Load()&faultNeverReady == 0 && c.now() >= c.readyAt {
		c.readyAt = 0
		c.setCSTS(c.csts | spec.CSTSReady)
		work++
	}
	if c.unreadyAt != 0 && c.now() >= c.unreadyAt {
		c.unreadyAt = 0
		c.setCSTS(c.csts &^ spec.CSTSReady)
		work++
	}
	if c.shutdownAt != 0 && c.now() >= c.shutdownAt {
		c.shutdownAt = 0
		// A shut-down controller touches no host memory: its queues are gone (the host
		// resets it before using it again), so the host may free their memory.
		c.dropQueues()
		c.setCSTS(c.csts.WithSHST(spec.ShutdownStatusComplete))
		work++
	}
	return work
}

// enable handles CC.EN 0 -> 1: check the configuration and the admin queues, then
// schedule RDY.
func (c *Controller) enable(cc spec.CC) {
	c.unreadyAt = 0
	c.setCSTS(c.csts.WithSHST(spec.ShutdownStatusNormal) &^ spec.CSTSReady)
	aqa := spec.AQA(c.regs.Read32(spec.RegAQA))
	asq := c.regs.Read64(spec.RegASQ)
	acq := c.regs.Read64(spec.RegACQ)
	capReg := spec.CAP(c.regs.Read64(spec.RegCAP))
	c.pageSize = bus.PageSize << cc.MPS()
	if cc.MPS() < capReg.MPSMIN() || cc.MPS() > capReg.MPSMAX() {
		c.violation(ViolationQueueSetup, "CC.MPS %d outside CAP.MPSMIN %d..MPSMAX %d", cc.MPS(), capReg.MPSMIN(), capReg.MPSMAX())
	} else if asq%c.pageSize != 0 || acq%c.pageSize != 0 {
		c.violation(ViolationQueueSetup, "ASQ %#x or ACQ %#x not aligned to the %d-byte memory page", asq, acq, c.pageSize)
	}
	ok := cc.MPS() >= capReg.MPSMIN() && cc.MPS() <= capReg.MPSMAX() && cc.CSS() == 0 &&
		cc.IOSQES() == spec.SQESizeLog && cc.IOCQES() == spec.CQESizeLog &&
		aqa.ASQS() >= 2 && aqa.ACQS() >= 2 && asq%c.pageSize == 0 && acq%c.pageSize == 0 && !c.fatal
	if ok {
		cq := c.newCQ(0, uint32(aqa.ACQS()), acq)
		sq := c.newSQ(0, uint32(aqa.ASQS()), asq, cq)
		if cq == nil || sq == nil {
			c.dropQueues()
			ok = false
		}
	}
	if !ok {
		c.setCSTS(c.csts | spec.CSTSFatal)
		return
	}
	c.enabled = true
	c.readyAt = c.now() + int64(c.cfg.ReadyDelay)
	if c.readyAt == 0 {
		c.readyAt = 1
	}
}

// reset handles CC.EN 1 -> 0: every queue and held command is dropped and RDY clears
// after the ready delay. A reset also clears CSTS.CFS and the shutdown status.
func (c *Controller) reset() {
	c.stats.resets.Add(1)
	c.dropQueues()
	c.resetCMB() // cmb.go
	c.enabled = false
	c.readyAt = 0
	c.shutdownAt = 0
	c.fatal = false
	c.maxQID = uint16(c.cfg.IOQueues)
	c.features[spec.FeatureNumberOfQueues] = spec.NumberOfQueues(c.maxQID, c.maxQID)
	c.setCSTS(c.csts &^ spec.CSTSFatal)
	if c.csts.RDY() {
		c.unreadyAt = c.now() + int64(c.cfg.ReadyDelay)
		if c.unreadyAt == 0 {
			c.unreadyAt = 1
		}
	}
}

func (c *Controller) dropQueues() {
	for _, sq := range c.sqs {
		if sq != nil {
			sq.pin.Add(-1)
		}
	}
	for _, cq := range c.cqs {
		if cq != nil {
			cq.pin.Add(-1)
		}
	}
	clear(c.sqs)
	clear(c.cqs)
	c.dropDoorbellBuffers() // shadowdb.go: a reset forgets them
	c.active = c.active[:0]
	clear(c.timers)
	c.timers = c.timers[:0]
	c.aers = 0
	c.releaseHeld(nil, false) // recovery.go: held commands go with their queues
}

// newCQ sets up completion queue id over device memory at addr, or returns nil when the
// memory is not all inside one DMA region.
func (c *Controller) newCQ(id uint16, size uint32, addr uint64) *completionQueue {
	cq, _ := c.newCQStatus(id, size, addr)
	return cq
}

// newCQStatus is newCQ with the status a Create I/O CQ answers when it fails.
func (c *Controller) newCQStatus(id uint16, size uint32, addr uint64) (*completionQueue, spec.Status) {
	ring, pin, st := c.queueMemory(addr, uint64(size)*spec.CQESize, false, id) // cmb.go
	if st != spec.StatusSuccess {
		return nil, st
	}
	cq := &completionQueue{}
	cq.id, cq.size, cq.ring = id, size, ring
	cq.headDB, cq.phase, cq.pin = c.regs.Reg32(spec.CQHeadDoorbell(id, c.cfg.DSTRD)), 1, pin
	c.regs.Write32(spec.CQHeadDoorbell(id, c.cfg.DSTRD), 0)
	c.shadowCQ(cq) // shadowdb.go
	pin.Add(1)
	c.cqs[id] = cq
	// Room for every completion this CQ can ever have pending, so the heap never grows
	// on the I/O path.
	need := 0
	for _, q := range c.cqs {
		if q != nil {
			need += int(q.size)
		}
	}
	if cap(c.timers) < need {
		t := make(timerHeap, len(c.timers), need)
		copy(t, c.timers)
		c.timers = t
	}
	return cq, spec.StatusSuccess
}

func (c *Controller) newSQ(id uint16, size uint32, addr uint64, cq *completionQueue) *submissionQueue {
	sq, _ := c.newSQStatus(id, size, addr, cq)
	return sq
}

// newSQStatus is newSQ with the status a Create I/O SQ answers when it fails.
func (c *Controller) newSQStatus(id uint16, size uint32, addr uint64, cq *completionQueue) (*submissionQueue, spec.Status) {
	if cq == nil {
		return nil, generic(spec.SCInvalidField)
	}
	if c.inline && cq.sqs > 0 {
		// Inline, each SQ is serviced by the thread ringing it, and a CQ is written by
		// the thread servicing its SQs: two SQs on one CQ could be two writers.
		return nil, generic(spec.SCInvalidField)
	}
	// The ring may be in host memory or in the controller memory buffer (cmb.go): the
	// commands are fetched from wherever it is.
	ring, pin, st := c.queueMemory(addr, uint64(size)*spec.SQESize, true, id)
	if st != spec.StatusSuccess {
		return nil, st
	}
	sq := &submissionQueue{}
	sq.id, sq.size, sq.ring = id, size, ring
	sq.tailDB, sq.cq, sq.pin = c.regs.Reg32(spec.SQTailDoorbell(id, c.cfg.DSTRD)), cq, pin
	if id != 0 {
		// The I/O path's working memory, per queue: sized for common transfers (a larger
		// one grows segs once), never allocated per command.
		sq.segs = make([][]byte, 0, min(c.cfg.maxTransfer()/bus.PageSize+2, 66))
		sq.scratch = make([]byte, 256*spec.DSMRangeSize)
		if ms := c.cfg.Format.MetadataSize; ms > 0 {
			sq.blk = make([]byte, int(c.cfg.LBASize)+int(ms))
		}
	}
	c.regs.Write32(spec.SQTailDoorbell(id, c.cfg.DSTRD), 0)
	c.shadowSQ(sq) // shadowdb.go
	pin.Add(1)
	cq.sqs++
	c.sqs[id] = sq
	c.active = append(c.active, sq)
	return sq, spec.StatusSuccess
}

// fetchBurst bounds one pass over an SQ: its completions are posted together at the end
// of the pass, and the threaded device serves its queues fairly one pass each.
const fetchBurst = 64

// serviceSQ fetches and executes up to limit commands the host queued on sq, in passes
// of up to fetchBurst: each pass reads the CQ head once, fetches every entry up to the
// tail the CQ has room for, executes them, adds the pass's statistics and then posts
// its completions in one CQ write pass.
func (c *Controller) serviceSQ(sq *submissionQueue, limit int) int {
	tail := sq.tailValue() // shadowdb.go
	if c.faults.armed.Load()&faultFreeze != 0 {
		// Looked at again after the tail: a host that froze the controller and then
		// rang the doorbell must not see that command run by a pass already under way.
		return 0
	}
	if tail != sq.tail {
		// New entries since the last look: they may fill the ring but never overrun
		// entries not fetched yet.
		added := (tail + sq.size - sq.tail) % sq.size
		pending := (sq.tail + sq.size - sq.head) % sq.size
		switch {
		case tail >= sq.size:
			if tail != sq.badTail {
				sq.badTail = tail
				c.stats.invalidDoorbells.Add(1)
				c.violation(ViolationDoorbellValue, "SQ %d tail %d, queue has %d entries", sq.id, tail, sq.size)
			}
			return 0
		case pending+added > sq.size-1:
			if tail != sq.badTail {
				sq.badTail = tail
				c.violation(ViolationDoorbellValue, "SQ %d tail %d overruns unfetched entries from %d", sq.id, tail, sq.head)
			}
		}
		sq.tail = tail
		sq.publishEventIdx() // shadowdb.go; a later move is seen by the next look
	}
	n := 0
	var cmd spec.Command
	for sq.head != tail && n < limit {
		cq := sq.cq
		room := cq.free(c)
		if room == 0 {
			if !cq.full {
				cq.full = true
				c.stats.cqFullStalls.Add(1)
			}
			break
		}
		cq.full = false
		batch := min(room, fetchBurst, uint32(limit-n))
		for i := uint32(0); i < batch && sq.head != tail; i++ {
			sq.fetch(&cmd)
			cq.reserved++
			sq.inflight++
			if sq.id == 0 {
				c.admin(sq, &cmd)
			} else {
				c.io(sq, &cmd)
			}
			n++
		}
		c.finishPass(sq)
	}
	return n
}

// complete finishes a command fetched from sq: now when due is 0 or has passed,
// otherwise when its time comes. An I/O command's completion waits for the end of its
// pass (finishPass).
func (c *Controller) complete(sq *submissionQueue, cmd *spec.Command, st spec.Status, dw0 uint32, due int64) {
	if due != 0 {
		c.timers.push(pending{due: due, sq: sq, cid: cmd.CID(), status: st, dw0: dw0})
		return
	}
	if sq.id == 0 || sq.ndone == len(sq.done) {
		c.post(sq, cmd.CID(), st, dw0)
		return
	}
	sq.done[sq.ndone] = doneEntry{dw0: dw0, sqhd: uint16(sq.head), cid: cmd.CID(), status: st}
	sq.ndone++
	if st != spec.StatusSuccess {
		sq.counts.errors++
	}
}

// finishPass adds a pass's statistics to the controller's, so that they count every
// command whose completion the host can see, then posts the pass's completions.
func (c *Controller) finishPass(sq *submissionQueue) {
	k := &sq.counts
	k.completions += uint64(sq.ndone)
	if k.ios != 0 {
		c.stats.ioCommands.Add(k.ios)
	}
	if k.reads != 0 {
		c.stats.reads.Add(k.reads)
		c.stats.readBytes.Add(k.readBytes)
	}
	if k.writes != 0 {
		c.stats.writes.Add(k.writes)
		c.stats.writeBytes.Add(k.writeBytes)
	}
	if k.completions != 0 {
		c.stats.completions.Add(k.completions)
	}
	if k.errors != 0 {
		c.stats.errors.Add(k.errors)
	}
	*k = ioCounts{}
	for i := range sq.ndone {
		d := &sq.done[i]
		c.postEntry(sq, d.cid, d.status, d.dw0, d.sqhd)
	}
	sq.ndone = 0
}

// post completes one command now.
func (c *Controller) post(sq *submissionQueue, cid uint16, st spec.Status, dw0 uint32) {
	c.stats.completions.Add(1)
	if st != spec.StatusSuccess {
		c.stats.errors.Add(1)
	}
	c.postEntry(sq, cid, st, dw0, uint16(sq.head))
}

func (c *Controller) postEntry(sq *submissionQueue, cid uint16, st spec.Status, dw0 uint32, sqhd uint16) {
	if st == prpOffsetInvalid || st == dataTransferError {
		c.violation(ViolationPRP, "SQ %d command %d completed with %v", sq.id, cid, st)
	}
	sq.cq.reserved--
	sq.inflight--
	sq.cq.post(dw0, sqhd, sq.id, cid, st)
}

func (c *Controller) serviceTimers() int {
	now := c.now()
	n := 0
	for len(c.timers) > 0 && c.timers[0].due <= now {
		p := c.timers.pop()
		c.post(p.sq, p.cid, p.status, p.dw0)
		n++
	}
	return n
}

// Statuses that only a bad data pointer from the host produces.
var (
	prpOffsetInvalid  = generic(spec.SCPRPOffsetInvalid)
	dataTransferError = generic(spec.SCDataTransferError)
)

// queueMemoryFreed decides a host Free of memory a device queue lives in. After the
// host disabled the controller (CC.EN=0) the device thread may not have dropped its
// queues yet: give it a pass. Otherwise, or if the queue is still there, the host
// freed memory an enabled controller may use: a violation, and the Free is refused.
func (c *Controller) queueMemoryFreed(addr uint64, pin *atomic.Int32) bool {
	if c.stopped.Load() {
		return true // the device is gone (Remove, Close): it reaches no memory
	}
	if cc := spec.CC(c.regs.Read32(spec.RegCC)); !cc.EN() {
		c.dma.quiesce()
		if pin.Load() <= 0 {
			return true
		}
	}
	c.violation(ViolationTeardown, "buffer at %#x holds a live queue", addr)
	return false
}
