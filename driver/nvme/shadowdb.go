package nvme

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Shadow doorbells (NVMe Base 2.0, Doorbell Buffer Config, admin opcode 7Ch, OACS bit
// 8): the host keeps each I/O queue's SQ tail and CQ head in a host memory buffer (the
// shadow doorbells) and the controller publishes in a second one (EventIdx) the value
// past which it wants a real doorbell write. Emulated controllers (QEMU) offer it: each
// MMIO doorbell write is a VM exit, a shadow update is a store to guest memory.
//
// Both buffers hold one slot per doorbell, laid out as the doorbell registers are (SQ
// y tail at slot 2y, CQ y head at slot 2y+1, 4 << CAP.DSTRD bytes apart). As Linux
// does, only I/O queues use them; the admin queue always rings its registers.

// dbbufState is the controller's shadow doorbell and EventIdx buffers.
type dbbufState struct {
	on             bool
	shadow, events bus.Buffer // views aligned to the memory page
	raw            []bus.Buffer
}

// needEvent is the spec's event-index rule (Linux nvme_dbbuf_need_event) on 16-bit
// wrapping values: a doorbell write is needed when moving the doorbell from old to
// newIdx passes eventIdx, that is when eventIdx lies in [old, newIdx) modulo 2^16.
func needEvent(eventIdx, newIdx, old uint16) bool {
	return newIdx-eventIdx-1 < newIdx-old
}

// setupShadowDoorbells allocates the two buffers and sends Doorbell Buffer Config when
// the controller offers it and the options allow. A controller that rejects the command
// runs without (as Linux does); one that does not answer fails the bring-up.
func (c *Controller) setupShadowDoorbells() error {
	if c.opts.NoShadowDoorbell || c.fabric != nil || c.IsDiscovery() ||
		c.ident.OACS&spec.OACSDoorbellBufferConfig == 0 {
		return nil
	}
	size := 2 * (c.ioQueues + 1) * int(spec.DoorbellStride(c.cap.DSTRD()))
	size = (size + c.pageSize - 1) &^ (c.pageSize - 1)
	var err error
	for _, b := range []*bus.Buffer{&c.dbbuf.shadow, &c.dbbuf.events} {
		buf, raw, aerr := c.allocDMA(size)
		if aerr != nil {
			c.freeShadowDoorbells(false)
			return fmt.Errorf("nvme: allocating shadow doorbell buffers: %w", aerr)
		}
		*b = buf
		c.dbbuf.raw = append(c.dbbuf.raw, raw)
	}
	if err = c.sendDoorbellBufferConfig(); err != nil {
		var se *StatusError
		if errors.As(err, &se) && c.Err() == nil {
			c.freeShadowDoorbells(false) // refused: nothing points at the buffers
			return nil
		}
		return err
	}
	c.dbbuf.on = true
	return nil
}

// sendDoorbellBufferConfig points the controller at the buffers: PRP1 the shadow
// doorbells, PRP2 the EventIdx buffer. A reset forgets them, so recovery sends it again.
func (c *Controller) sendDoorbellBufferConfig() error {
	cmd := spec.Command{PRP1: c.dbbuf.shadow.Addr, PRP2: c.dbbuf.events.Addr}
	cmd.SetOpcodeCID(uint8(spec.AdminDoorbellBufferCfg), 0)
	if _, err := c.AdminCommand(&cmd, bus.Buffer{}); err != nil {
		return fmt.Errorf("nvme: Doorbell Buffer Config: %w", err)
	}
	return nil
}

// freeShadowDoorbells releases the buffers (deferred while the controller may use them).
func (c *Controller) freeShadowDoorbells(deviceMayUse bool) {
	for _, b := range c.dbbuf.raw {
		c.freeDMA(b, deviceMayUse)
	}
	c.dbbuf = dbbufState{}
}

// ShadowDoorbells reports whether the controller's I/O queues use shadow doorbells.
func (c *Controller) ShadowDoorbells() bool { return c.dbbuf.on }

// slot32 is the 32-bit slot of doorbell index i (2*qid, or 2*qid+1) in b.
func (c *Controller) slot32(b bus.Buffer, i int) *uint32 {
	off := i * int(spec.DoorbellStride(c.cap.DSTRD()))
	return (*uint32)(unsafe.Pointer(&b.Bytes[off]))
}

// initShadow points an I/O queue pair at its slots and zeroes them, so a queue ID used
// before (or a queue re-created after a reset) starts from the values of a new queue.
func (q *QPair) initShadow() {
	c := q.ctrl
	if !c.dbbuf.on || q.id == 0 || q.fabric != nil {
		return
	}
	sq, cq := 2*int(q.id), 2*int(q.id)+1
	q.sqShadow, q.sqEvent = c.slot32(c.dbbuf.shadow, sq), c.slot32(c.dbbuf.events, sq)
	q.cqShadow, q.cqEvent = c.slot32(c.dbbuf.shadow, cq), c.slot32(c.dbbuf.events, cq)
	q.clearShadow()
}

// clearShadow zeroes the queue pair's slots: the queue is (to be) created with tail and
// head 0, and an EventIdx left from an earlier queue could hold back a needed doorbell.
func (q *QPair) clearShadow() {
	if q.sqShadow == nil {
		return
	}
	for _, p := range []*uint32{q.sqShadow, q.sqEvent, q.cqShadow, q.cqEvent} {
		atomic.StoreUint32(p, 0)
	}
	q.lastCQHead = 0
}

// updateShadow stores v in a shadow doorbell and reports whether the controller asked
// for a real doorbell write. The buffers are host memory the controller reads and writes
// too, so sync/atomic gives the ordering: the store is a release (the SQ entries are
// visible before the new tail) and the store/load pair is sequentially consistent (a
// full barrier: the controller either sees the new value or has published an EventIdx
// that makes the host ring). Not inlined: its XCHG (atomic store on amd64) belongs to
// host memory, and stays out of the functions the doorbell rules test checks for
// locked instructions (qpair_rules_test.go).
//
//go:noinline
func updateShadow(shadow, event *uint32, old, v uint32) bool {
	atomic.StoreUint32(shadow, v)
	return needEvent(uint16(atomic.LoadUint32(event)), uint16(v), uint16(old))
}
