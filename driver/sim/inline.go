package sim

import (
	"fmt"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Inline mode (Config.Inline, trid key mode=inline) runs the controller model on the
// host thread that touches a register, instead of on a device thread:
//
//   - a write to an I/O queue's SQ tail doorbell fetches, executes and completes every
//     command up to the new tail before the write returns, on the writing thread; the
//     CQ head doorbell of a queue whose fetching stalled on a full CQ resumes it;
//   - every other register access (CC, CSTS, AQA..., the admin queue's doorbells) runs
//     the controller-level model — enable, ready and shutdown timing, faults, admin
//     commands — under the controller's mutex, on the accessing goroutine.
//
// So one core runs the whole I/O path: workload, the driver's queue protocol, the
// device model, the completion and the latency record. Concurrency follows the NVMe
// queue model the driver already obeys: each I/O queue (SQ and its CQ) is rung by one
// thread at a time, which owns its device state; queues rung from different threads
// share only atomics (statistics, fault arming, the DMA table, ioReady). A CQ serves
// one SQ (a second Create I/O SQ on it is refused), so a CQ has one writer.
//
// What needs a clock is refused: the nand model and completion delays complete
// commands after the doorbell write, and nothing would run the model then.

// inlineRegisters is BAR0 as an inline controller hands it to the host. It is not a
// *bus.MMIO, so the driver rings doorbells through Write32, which runs the model.
// Accesses are checked against the register rules as the threaded view checks them.
type inlineRegisters struct {
	c   *Controller
	bar *bus.MMIO // the device's unobserved view of the same memory
}

var _ bus.Registers = (*inlineRegisters)(nil)

func (r *inlineRegisters) Read32(off uint32) uint32 {
	p := r.bar.Reg32(off) // panics on a bad offset, as bus.MMIO does
	c := r.c
	hostView{c}.ObserveAccess(off, 4, false)
	if off < spec.RegDoorbellBase {
		c.inlineControl() // CSTS and the timed transitions are current when read
	}
	return bus.Load32(p)
}

func (r *inlineRegisters) Write32(off uint32, v uint32) {
	p := r.bar.Reg32(off)
	c := r.c
	hostView{c}.ObserveAccess(off, 4, true)
	bus.Store32(p, v)
	if off >= spec.RegDoorbellBase {
		c.inlineDoorbell(off)
		return
	}
	c.inlineControl()
}

// Read64 reads a 64-bit register as two 32-bit reads, low dword first (bus.Read64).
func (r *inlineRegisters) Read64(off uint32) uint64 {
	r.check64(off)
	return bus.Read64(r, off)
}

// Write64 writes a 64-bit register as two 32-bit writes, low dword first.
func (r *inlineRegisters) Write64(off uint32, v uint64) {
	r.check64(off)
	bus.Write64(r, off, v)
}

func (r *inlineRegisters) check64(off uint32) {
	if off%8 != 0 || uint64(off)+8 > uint64(r.bar.Size()) {
		// A bad offset is a bug in the driver, never user input.
		panic(fmt.Sprintf("sim: 8-byte register access at %#x outside %#x-byte space or unaligned", off, r.bar.Size()))
	}
}

// inlineControl runs the controller-level model once, as a pass of the device loop
// would, and publishes whether I/O queues may be serviced.
func (c *Controller) inlineControl() {
	c.mu.Lock()
	if !c.stopped.Load() {
		c.control()
		c.publishReady()
	}
	c.mu.Unlock()
}

// publishReady updates ioReady; it runs under mu.
func (c *Controller) publishReady() {
	if r := c.serviceable(); c.ioReady.Load() != r {
		c.ioReady.Store(r)
	}
}

// inlineDoorbell runs what the doorbell at off, just written, asks for.
func (c *Controller) inlineDoorbell(off uint32) {
	rel := off - spec.RegDoorbellBase
	shift := 2 + uint32(c.cfg.DSTRD)
	if rel&(1<<shift-1) != 0 {
		return // between doorbells (DSTRD > 0): nothing is there
	}
	idx := rel >> shift
	qid, isCQHead := idx/2, idx%2 == 1
	if qid == 0 {
		c.mu.Lock()
		if !c.stopped.Load() {
			c.control()
			if sq := c.sqs[0]; sq != nil && c.serviceable() && c.faults.armed.Load()&faultFreeze == 0 {
				c.serviceSQ(sq, int(sq.size))
			}
			c.publishReady()
		}
		c.mu.Unlock()
		return
	}
	armed := c.faults.armed.Load()
	if armed&faultFatal != 0 {
		c.inlineControl() // the controller fails now; CSTS.CFS tells the host
		return
	}
	if !c.ioReady.Load() || armed&faultFreeze != 0 || int(qid) >= len(c.sqs) {
		return
	}
	// The queue was created (under mu) before the host could ring it, and only this
	// thread rings it now: its state needs no lock.
	sq := c.sqs[qid]
	if sq == nil || (isCQHead && !sq.cq.full) {
		return
	}
	c.serviceSQ(sq, int(sq.size))
	if c.faults.armed.Load()&faultFatal != 0 {
		c.inlineControl() // a violation under Strict: fail now, not at the next access
	}
}
