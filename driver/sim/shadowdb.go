package sim

import (
	"sync/atomic"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Shadow doorbells (Doorbell Buffer Config, admin opcode 7Ch; offered in OACS bit 8
// when Config.ShadowDoorbell is set), modelled on QEMU's controller: once configured,
// an I/O queue created afterwards takes its SQ tail and CQ head from the host's shadow
// doorbell buffer instead of its doorbell registers, and after fetching from an SQ the
// device publishes the tail it reached as that SQ's EventIdx, asking for a doorbell
// write only once the host moves past it. The CQ EventIdx is never written (QEMU
// without ioeventfd): the device reads the shadow head whenever it needs room. The
// admin queue keeps its registers (the host does not shadow it, as Linux does not).
//
// The buffers are host memory the host updates concurrently, so the device reads and
// writes slots with sync/atomic (sequentially consistent, as the spec's barrier asks).

// dbbuf is the device's view of the two host buffers; nil slices when not configured.
type dbbuf struct {
	shadow, events []byte
	pins           []*atomic.Int32 // the regions holding them, pinned while in use
}

// doorbellBufferConfig runs Doorbell Buffer Config: PRP1 the shadow doorbells, PRP2 the
// EventIdx buffer, both memory page aligned and large enough for every queue.
func (c *Controller) doorbellBufferConfig(cmd *spec.Command) spec.Status {
	if !c.cfg.ShadowDoorbell {
		return generic(spec.SCInvalidOpcode)
	}
	size := uint64(2*(c.cfg.IOQueues+1)) * uint64(spec.DoorbellStride(c.cfg.DSTRD))
	if cmd.PRP1%c.pageSize != 0 || cmd.PRP2%c.pageSize != 0 {
		return generic(spec.SCInvalidField)
	}
	rs, ok1 := c.dma.lookup(cmd.PRP1, size)
	re, ok2 := c.dma.lookup(cmd.PRP2, size)
	if !ok1 || !ok2 {
		return generic(spec.SCInvalidField)
	}
	c.dropDoorbellBuffers()
	c.db.shadow = rs.mem[cmd.PRP1-rs.addr:][:size]
	c.db.events = re.mem[cmd.PRP2-re.addr:][:size]
	rs.queues.Add(1)
	re.queues.Add(1)
	c.db.pins = append(c.db.pins[:0], rs.queues, re.queues)
	// Queues that exist already switch over now, their current values copied to the
	// shadow slots (as QEMU does), so that nothing moves backwards.
	for _, sq := range c.sqs {
		if sq != nil && sq.id != 0 {
			c.shadowSQ(sq)
			atomic.StoreUint32(sq.shadowTail, sq.tail)
		}
	}
	for _, cq := range c.cqs {
		if cq != nil && cq.id != 0 {
			c.shadowCQ(cq)
			atomic.StoreUint32(cq.shadowHead, cq.head)
		}
	}
	return spec.StatusSuccess
}

// dropDoorbellBuffers forgets the buffers (a reset, or a new configuration).
func (c *Controller) dropDoorbellBuffers() {
	for _, p := range c.db.pins {
		p.Add(-1)
	}
	c.db = dbbuf{pins: c.db.pins[:0]}
}

func (c *Controller) slot(b []byte, i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&b[i*int(spec.DoorbellStride(c.cfg.DSTRD))]))
}

// shadowSQ points an I/O SQ at its slots when shadow doorbells are configured.
func (c *Controller) shadowSQ(sq *submissionQueue) {
	if c.db.shadow == nil || sq.id == 0 {
		return
	}
	sq.shadowTail, sq.eventIdx = c.slot(c.db.shadow, 2*int(sq.id)), c.slot(c.db.events, 2*int(sq.id))
}

// shadowCQ points an I/O CQ at its shadow head slot.
func (c *Controller) shadowCQ(cq *completionQueue) {
	if c.db.shadow == nil || cq.id == 0 {
		return
	}
	cq.shadowHead = c.slot(c.db.shadow, 2*int(cq.id)+1)
}

// tailValue is the tail the host last gave: the shadow slot or the register.
func (sq *submissionQueue) tailValue() uint32 {
	if sq.shadowTail != nil {
		return atomic.LoadUint32(sq.shadowTail)
	}
	return bus.Load32(sq.tailDB)
}

// headValue is the CQ head the host last gave: the shadow slot or the register.
func (cq *completionQueue) headValue() uint32 {
	if cq.shadowHead != nil {
		return atomic.LoadUint32(cq.shadowHead)
	}
	return bus.Load32(cq.headDB)
}

// publishEventIdx asks for a doorbell write once the host moves the tail past the one
// the device has seen. A host that moved it before seeing the new EventIdx (and so did
// not ring) is caught by the device thread's next look at the shadow slot, on its next
// pass. (Inline mode, where the model runs only inside register writes, refuses
// shadowdb: nothing would look.)
func (sq *submissionQueue) publishEventIdx() {
	if sq.eventIdx != nil {
		atomic.StoreUint32(sq.eventIdx, sq.tail)
	}
}
