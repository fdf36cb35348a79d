package sim

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// A minimal test-only host: just enough of a driver to talk to the simulator through
// registers, DMA memory and hand-built commands.

const waitLimit = 5 * time.Second

type host struct {
	t     testing.TB
	c     *Controller
	regs  *bus.MMIO
	alloc bus.Allocator
	admin *hostQueue
}

// hostQueue is the host side of one SQ/CQ pair.
type hostQueue struct {
	qid          uint16
	sq, cq       bus.Buffer
	sqSize       uint32
	cqSize       uint32
	tail, head   uint32
	phase        uint16
	nextCID      uint16
	sqDB, cqDB   *uint32
	pendingTails uint32
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.NamespaceSize = 64 << 20
	cfg.ReadyDelay = 0
	return cfg
}

func newController(t testing.TB, cfg Config) *Controller {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// newHost starts a controller and brings it up with a 32-entry admin queue.
func newHost(t testing.TB, cfg Config) *host {
	t.Helper()
	c := newController(t, cfg)
	h := &host{t: t, c: c, regs: c.hostRegs, alloc: c.Allocator()}
	h.admin = h.allocQueue(0, 32, 32)
	h.regs.Write32(spec.RegAQA, uint32(spec.MakeAQA(32, 32)))
	h.regs.Write64(spec.RegASQ, h.admin.sq.Addr)
	h.regs.Write64(spec.RegACQ, h.admin.cq.Addr)
	h.regs.Write32(spec.RegCC, uint32(goodCC()))
	h.waitCSTS(func(s spec.CSTS) bool { return s.RDY() }, "RDY=1")
	return h
}

func goodCC() spec.CC {
	return spec.MakeCC(true, 0, 0, spec.CCShutdownNone, spec.SQESizeLog, spec.CQESizeLog)
}

func (h *host) waitCSTS(ok func(spec.CSTS) bool, what string) spec.CSTS {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		s := spec.CSTS(h.regs.Read32(spec.RegCSTS))
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for CSTS %s; have %v", what, s)
		}
		time.Sleep(20 * time.Microsecond)
	}
}

func (h *host) mustAlloc(size int) bus.Buffer {
	h.t.Helper()
	b, err := h.alloc.Alloc(size)
	if err != nil {
		h.t.Fatalf("Alloc(%d): %v", size, err)
	}
	return b
}

func (h *host) allocQueue(qid uint16, sqSize, cqSize uint32) *hostQueue {
	return &hostQueue{
		qid: qid, sqSize: sqSize, cqSize: cqSize, phase: 1,
		sq:   h.mustAlloc(int(sqSize) * spec.SQESize),
		cq:   h.mustAlloc(int(cqSize) * spec.CQESize),
		sqDB: h.regs.Reg32(spec.SQTailDoorbell(qid, 0)),
		cqDB: h.regs.Reg32(spec.CQHeadDoorbell(qid, 0)),
	}
}

// put writes cmd at the SQ tail with a fresh CID without ringing; it returns the CID.
func (q *hostQueue) put(cmd *spec.Command) uint16 {
	cid := q.nextCID
	q.nextCID++
	cmd.SetCID(cid)
	*(*spec.Command)(unsafe.Pointer(&q.sq.Bytes[q.tail*spec.SQESize])) = *cmd
	q.tail = (q.tail + 1) % q.sqSize
	return cid
}

func (q *hostQueue) ring() { atomic.StoreUint32(q.sqDB, q.tail) }

func (q *hostQueue) submit(cmd *spec.Command) uint16 {
	cid := q.put(cmd)
	q.ring()
	return cid
}

// peek reports whether a new completion is at the CQ head, without consuming it.
func (q *hostQueue) peek() bool {
	w := atomic.LoadUint32((*uint32)(unsafe.Pointer(&q.cq.Bytes[q.head*spec.CQESize+12])))
	return uint16(w>>16)&1 == q.phase
}

// reap consumes one completion if there is one.
func (q *hostQueue) reap(ring bool) (spec.Completion, bool) {
	if !q.peek() {
		return spec.Completion{}, false
	}
	cqe := *(*spec.Completion)(unsafe.Pointer(&q.cq.Bytes[q.head*spec.CQESize]))
	q.head++
	if q.head == q.cqSize {
		q.head = 0
		q.phase ^= 1
	}
	if ring {
		atomic.StoreUint32(q.cqDB, q.head)
	}
	return cqe, true
}

func (q *hostQueue) wait(t testing.TB) spec.Completion {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for i := 0; ; i++ {
		if cqe, ok := q.reap(true); ok {
			return cqe
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %d: timed out waiting for a completion", q.qid)
		}
		// Spin a little (Go's short sleeps can last a millisecond), then back off.
		if i < 1000 {
			runtime.Gosched()
		} else {
			time.Sleep(20 * time.Microsecond)
		}
	}
}

// run submits cmd and waits for its completion, checking the CID and SQID.
func (h *host) run(q *hostQueue, cmd spec.Command) spec.Completion {
	h.t.Helper()
	cid := q.submit(&cmd)
	cqe := q.wait(h.t)
	if cqe.CID != cid || cqe.SQID != q.qid {
		h.t.Fatalf("completion CID %d SQID %d, want CID %d SQID %d", cqe.CID, cqe.SQID, cid, q.qid)
	}
	return cqe
}

func (h *host) adminCmd(cmd spec.Command) spec.Completion {
	h.t.Helper()
	return h.run(h.admin, cmd)
}

func adminOp(op spec.AdminOpcode) spec.Command {
	var cmd spec.Command
	cmd.SetOpcodeCID(uint8(op), 0)
	return cmd
}

func createCQCmd(qid uint16, size uint32, addr uint64) spec.Command {
	cmd := adminOp(spec.AdminCreateIOCQ)
	cmd.PRP1 = addr
	cmd.CDW10 = uint32(qid) | (size-1)<<16
	cmd.CDW11 = spec.QueuePhysicallyContiguous
	return cmd
}

func createSQCmd(qid uint16, size uint32, addr uint64, cqid uint16) spec.Command {
	cmd := adminOp(spec.AdminCreateIOSQ)
	cmd.PRP1 = addr
	cmd.CDW10 = uint32(qid) | (size-1)<<16
	cmd.CDW11 = spec.QueuePhysicallyContiguous | uint32(cqid)<<16
	return cmd
}

// ioQueue creates I/O queue pair qid with the given sizes.
func (h *host) ioQueue(qid uint16, sqSize, cqSize uint32) *hostQueue {
	h.t.Helper()
	q := h.allocQueue(qid, sqSize, cqSize)
	if st := st(h.adminCmd(createCQCmd(qid, cqSize, q.cq.Addr))); !st.OK() {
		h.t.Fatalf("create CQ %d: %v", qid, st)
	}
	if st := st(h.adminCmd(createSQCmd(qid, sqSize, q.sq.Addr, qid))); !st.OK() {
		h.t.Fatalf("create SQ %d: %v", qid, st)
	}
	return q
}

// prps fills PRP1/PRP2 for an n-byte transfer at device address addr (contiguous in
// device memory), building PRP lists (chained as needed) from the allocator.
func (h *host) prps(cmd *spec.Command, addr uint64, n uint64) {
	h.t.Helper()
	cmd.PRP1 = addr
	first := min(n, memPage-addr%memPage)
	left := n - first
	next := addr + first
	switch {
	case left == 0:
	case left <= memPage:
		cmd.PRP2 = next
	default:
		pages := (left + memPage - 1) / memPage
		var pageAddrs []uint64
		for i := uint64(0); i < pages; i++ {
			pageAddrs = append(pageAddrs, next+i*memPage)
		}
		h.fillPRPList(cmd, pageAddrs)
	}
}

// fillPRPList writes the page addresses into list pages, 511 entries and a chain pointer
// per page when they do not fit in one.
func (h *host) fillPRPList(cmd *spec.Command, pageAddrs []uint64) {
	list := h.mustAlloc(memPage)
	cmd.PRP2 = list.Addr
	for {
		if len(pageAddrs) <= memPage/8 {
			for i, a := range pageAddrs {
				binary.LittleEndian.PutUint64(list.Bytes[8*i:], a)
			}
			return
		}
		for i := 0; i < memPage/8-1; i++ {
			binary.LittleEndian.PutUint64(list.Bytes[8*i:], pageAddrs[i])
		}
		pageAddrs = pageAddrs[memPage/8-1:]
		nextList := h.mustAlloc(memPage)
		binary.LittleEndian.PutUint64(list.Bytes[memPage-8:], nextList.Addr)
		list = nextList
	}
}

func ioCmd(op spec.IOOpcode, nsid uint32, slba uint64, nlb uint32) spec.Command {
	var cmd spec.Command
	cmd.SetOpcodeCID(uint8(op), 0)
	cmd.NSID = nsid
	cmd.SetLBARange(slba, nlb)
	return cmd
}

// rw runs a read or write of nlb blocks at slba through buf (a contiguous buffer).
func (h *host) rw(q *hostQueue, op spec.IOOpcode, nsid uint32, slba uint64, nlb uint32, buf bus.Buffer) spec.Status {
	h.t.Helper()
	cmd := ioCmd(op, nsid, slba, nlb)
	h.prps(&cmd, buf.Addr, uint64(buf.Len()))
	return st(h.run(q, cmd))
}

func fillPattern(b []byte, seed byte) {
	for i := range b {
		b[i] = byte(i*7) + seed + byte(i>>12)
	}
}

func wantStatus(t testing.TB, what string, got, want spec.Status) {
	t.Helper()
	if got != want {
		t.Errorf("%s: status %v, want %v", what, got, want)
	}
}

func atomic32Store(p *uint32, v uint32) { atomic.StoreUint32(p, v) }

// st is the status of a completion, without its phase tag.
func st(cqe spec.Completion) spec.Status { return cqe.StatusField() }
