package nvme

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
	"testing"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// fakeDev is a minimal, synchronous NVMe controller for protocol tests: a Go struct
// behind bus.Registers whose doorbell writes process the queue at once on the caller's
// goroutine. It moves no data (I/O completes like a null device) — data paths and PRP
// walking are tested against the real simulator (driver/sim) in the external tests.
type fakeDev struct {
	mu   sync.Mutex
	regs map[uint32]uint32
	cap  spec.CAP

	allocs    []fakeRegion
	lastAlloc int // index into allocs of the last region mem found
	nextIOV   uint64

	sqs, cqs [fakeMaxQID + 1]*fakeQueue // by queue ID; nil when absent (a slice, not a map, so the fake stays cheap in benchmarks)

	neverReady bool
	fatalOnEn  bool
	noShutdown bool
	mdts       uint8
	nn         uint32
	// ioStatus, when set, decides each I/O command's status.
	ioStatus func(cmd *spec.Command) spec.Status
	// hold, when set, keeps I/O commands from completing.
	hold    bool
	held    []heldCmd
	ioCount int
	cur     spec.Command // the command being processed; a field so that processing does not allocate
	sqRings int
	// dupEvery > 0 posts every dupEvery-th I/O completion twice (when the CQ has room),
	// as a buggy controller might; dups counts them.
	dupEvery int
	dups     int
	// lateDupEvery > 0 posts a copy of every lateDupEvery-th I/O completion again later,
	// with an error status: just before completing the next command whose CID has the
	// same low bits (lateDupMask), that is the next command in the same request slot.
	lateDupEvery int
	lateDupMask  uint16
	late         *heldCmd
	// badSQHD reports an SQ head beyond the queue's end in I/O completions.
	badSQHD bool
	// stuckReady keeps CSTS.RDY set after CC.EN=0: a controller that will not disable.
	stuckReady bool
	// fetchMax > 0 fetches at most that many I/O commands per doorbell write, leaving
	// the rest in the SQ for the next doorbell (of either queue), so the SQ holds
	// entries not yet fetched; a tail that overruns them panics.
	fetchMax int
}

type heldCmd struct {
	sqid uint16
	cmd  spec.Command
}

type fakeRegion struct {
	addr uint64
	mem  []byte
}

type fakeQueue struct {
	base       uint64
	size       uint16
	head, tail uint16
	phase      uint16
	cqid       uint16
	ring       []byte // the queue's memory, found on first use (benchmarks measure the driver, not the lookup)
}

// slot returns entry i of the queue's ring of entries of size bytes.
func (d *fakeDev) slot(q *fakeQueue, i uint16, size int) []byte {
	if q.ring == nil {
		q.ring = d.mem(q.base, int(q.size)*size)
	}
	return q.ring[int(i)*size : int(i)*size+size]
}

// fakeMaxQID is the highest queue ID the fake controller keeps (it grants 4 I/O queues).
const fakeMaxQID = 8

func (d *fakeDev) queue(qs *[fakeMaxQID + 1]*fakeQueue, qid uint16) *fakeQueue {
	if qid > fakeMaxQID {
		return nil
	}
	return qs[qid]
}

func newFakeDev(mqes uint16) *fakeDev {
	d := &fakeDev{
		regs:    map[uint32]uint32{},
		cap:     spec.MakeCAP(mqes, true, 1, 0, 1, 0, 0),
		nextIOV: 0x10_0000_0000,
		mdts:    5,
		nn:      1,
	}
	d.regs[spec.RegVS] = uint32(spec.MakeVS(1, 4, 0))
	return d
}

// Alloc implements bus.Allocator with Go memory at page-aligned fake device addresses.
func (d *fakeDev) Alloc(size int) (bus.Buffer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := (size + pageSize - 1) &^ (pageSize - 1)
	raw := make([]byte, n+pageSize)
	off := int(pageSize - uintptr(unsafe.Pointer(&raw[0]))%pageSize)
	mem := raw[off%pageSize : off%pageSize+n]
	addr := d.nextIOV
	d.nextIOV += uint64(n) + pageSize // a hole between regions
	d.allocs = append(d.allocs, fakeRegion{addr, mem})
	return bus.Buffer{Bytes: mem[:size], Addr: addr}, nil
}

func (d *fakeDev) Free(b bus.Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, r := range d.allocs {
		if r.addr == b.Addr {
			d.allocs = append(d.allocs[:i], d.allocs[i+1:]...)
			return nil
		}
	}
	return nil
}

func (d *fakeDev) mem(addr uint64, n int) []byte {
	// The region of the last access first: the round-trip benchmarks measure the
	// driver, not this search.
	if i := d.lastAlloc; i < len(d.allocs) && addr >= d.allocs[i].addr && addr+uint64(n) <= d.allocs[i].addr+uint64(len(d.allocs[i].mem)) {
		off := addr - d.allocs[i].addr
		return d.allocs[i].mem[off : off+uint64(n)]
	}
	i := sort.Search(len(d.allocs), func(i int) bool { return d.allocs[i].addr+uint64(len(d.allocs[i].mem)) > addr })
	if i == len(d.allocs) || addr < d.allocs[i].addr || addr+uint64(n) > d.allocs[i].addr+uint64(len(d.allocs[i].mem)) {
		panic(fmt.Sprintf("fakeDev: DMA at %#x+%d outside allocated memory", addr, n))
	}
	d.lastAlloc = i
	off := addr - d.allocs[i].addr
	return d.allocs[i].mem[off : off+uint64(n)]
}

func (d *fakeDev) Read32(off uint32) uint32 {
	switch off {
	case spec.RegCAP:
		return uint32(d.cap)
	case spec.RegCAP + 4:
		return uint32(d.cap >> 32)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.regs[off]
}

func (d *fakeDev) Read64(off uint32) uint64 {
	if off == spec.RegCAP {
		return uint64(d.cap)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return uint64(d.regs[off]) | uint64(d.regs[off+4])<<32
}

func (d *fakeDev) Write64(off uint32, v uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.regs[off], d.regs[off+4] = uint32(v), uint32(v>>32)
}

func (d *fakeDev) Write32(off uint32, v uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var old uint32
	if off < spec.RegDoorbellBase { // doorbells are write-only: no map update per I/O
		old = d.regs[off]
		d.regs[off] = v
	}
	switch {
	case off == spec.RegCC:
		d.ccChanged(spec.CC(old), spec.CC(v))
	case off >= spec.RegDoorbellBase:
		idx := (off - spec.RegDoorbellBase) / 4
		qid := uint16(idx / 2)
		if idx%2 == 0 {
			d.sqRings++
			if q := d.queue(&d.sqs, qid); q != nil {
				if d.fetchMax > 0 {
					pending := (q.tail + q.size - q.head) % q.size
					added := (uint16(v) + q.size - q.tail) % q.size
					if pending+added > q.size-1 {
						panic(fmt.Sprintf("fakeDev: SQ %d tail %d overruns %d entries not yet fetched from %d", qid, v, pending, q.head))
					}
				}
				q.tail = uint16(v)
				d.process(qid, q)
			}
		} else if q := d.queue(&d.cqs, qid); q != nil {
			q.head = uint16(v)
			if sq := d.queue(&d.sqs, qid); d.fetchMax > 0 && sq != nil {
				d.process(qid, sq)
			}
		}
	}
}

func (d *fakeDev) ccChanged(old, cc spec.CC) {
	csts := spec.CSTS(d.regs[spec.RegCSTS])
	if cc.EN() && !old.EN() {
		if d.fatalOnEn {
			csts |= spec.CSTSFatal
		} else if !d.neverReady {
			aqa := spec.AQA(d.regs[spec.RegAQA])
			asq := uint64(d.regs[spec.RegASQ]) | uint64(d.regs[spec.RegASQ+4])<<32
			acq := uint64(d.regs[spec.RegACQ]) | uint64(d.regs[spec.RegACQ+4])<<32
			d.sqs, d.cqs = [fakeMaxQID + 1]*fakeQueue{}, [fakeMaxQID + 1]*fakeQueue{}
			d.sqs[0] = &fakeQueue{base: asq, size: aqa.ASQS()}
			d.cqs[0] = &fakeQueue{base: acq, size: aqa.ACQS(), phase: 1}
			csts |= spec.CSTSReady
		}
	}
	if !cc.EN() && old.EN() && !d.stuckReady {
		csts &^= spec.CSTSReady | spec.CSTSFatal
	}
	if cc.SHN() != spec.CCShutdownNone && !d.noShutdown {
		csts = csts.WithSHST(spec.ShutdownStatusComplete)
	}
	d.regs[spec.RegCSTS] = uint32(csts)
}

func (d *fakeDev) process(sqid uint16, sq *fakeQueue) {
	for fetched := 0; sq.head != sq.tail && (sqid == 0 || d.fetchMax == 0 || fetched < d.fetchMax); fetched++ {
		// With duplicates on, the fake behaves as a controller must when the CQ is full:
		// it stops fetching until the host frees room (room for the command and two
		// duplicates). Otherwise a full CQ is the driver's fault and post panics.
		if sqid != 0 && (d.dupEvery > 0 || d.lateDupEvery > 0) && d.cqRoom(d.cqs[sq.cqid]) < 3 {
			return
		}
		raw := d.slot(sq, sq.head, spec.SQESize)
		d.cur = *(*spec.Command)(unsafe.Pointer(&raw[0]))
		cmd := &d.cur
		sq.head = (sq.head + 1) % sq.size
		if sqid == 0 {
			st, dw0 := d.admin(cmd)
			d.post(0, sq, cmd, st, dw0)
			continue
		}
		d.ioCount++
		if d.hold {
			d.held = append(d.held, heldCmd{sqid, *cmd})
			continue
		}
		st := spec.StatusSuccess
		if d.ioStatus != nil {
			st = d.ioStatus(cmd)
		}
		if d.lateDupEvery > 0 {
			if l := d.late; l != nil && l.sqid == sqid && l.cmd.CID()&d.lateDupMask == cmd.CID()&d.lateDupMask {
				d.post(sqid, sq, &l.cmd, spec.MakeStatus(spec.SCTGeneric, spec.SCInternalError), 0)
				d.dups++
				d.late = nil
			} else if l == nil && d.ioCount%d.lateDupEvery == 0 {
				d.late = &heldCmd{sqid, *cmd}
			}
		}
		d.post(sqid, sq, cmd, st, 0)
		if d.dupEvery > 0 && d.ioCount%d.dupEvery == 0 {
			d.post(sqid, sq, cmd, st, 0)
			d.dups++
		}
	}
}

// cqRoom is how many more entries cq can take before the host consumes any.
func (d *fakeDev) cqRoom(cq *fakeQueue) uint16 {
	return cq.size - 1 - (cq.tail+cq.size-cq.head)%cq.size
}

// release completes every held command (in reverse order, to exercise out-of-order
// completion).
func (d *fakeDev) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hold = false
	for i := len(d.held) - 1; i >= 0; i-- {
		h := d.held[i]
		d.post(h.sqid, d.sqs[h.sqid], &h.cmd, spec.StatusSuccess, 0)
	}
	d.held = nil
}

func (d *fakeDev) post(sqid uint16, sq *fakeQueue, cmd *spec.Command, st spec.Status, dw0 uint32) {
	cq := d.cqs[sq.cqid]
	if sqid == 0 {
		cq = d.cqs[0]
	}
	if (cq.tail+1)%cq.size == cq.head {
		panic("fakeDev: CQ overflow: the driver let more commands out than the CQ holds")
	}
	raw := d.slot(cq, cq.tail, spec.CQESize)
	binary.LittleEndian.PutUint32(raw[0:], dw0)
	sqhd := sq.head
	if d.badSQHD && sqid != 0 {
		sqhd = sq.size + sq.tail // beyond the queue
	}
	binary.LittleEndian.PutUint16(raw[8:], sqhd)
	binary.LittleEndian.PutUint16(raw[10:], sqid)
	binary.LittleEndian.PutUint16(raw[12:], cmd.CID())
	binary.LittleEndian.PutUint16(raw[14:], uint16(st)<<1|cq.phase)
	cq.tail++
	if cq.tail == cq.size {
		cq.tail = 0
		cq.phase ^= 1
	}
}

func (d *fakeDev) admin(cmd *spec.Command) (spec.Status, uint32) {
	gen := func(sc uint8) spec.Status { return spec.MakeStatus(spec.SCTGeneric, sc) }
	cs := func(sc uint8) spec.Status { return spec.MakeStatus(spec.SCTCommandSpecific, sc) }
	switch spec.AdminOpcode(cmd.Opcode()) {
	case spec.AdminIdentify:
		buf := d.mem(cmd.PRP1, spec.IdentifyDataSize)
		switch cmd.CDW10 & 0xFF {
		case spec.CNSController:
			id := (*spec.IdentifyController)(unsafe.Pointer(&buf[0]))
			spec.SetString(id.SN[:], "FAKE0001")
			spec.SetString(id.MN[:], "fake controller")
			spec.SetString(id.FR[:], "1.0")
			id.MDTS, id.SQES, id.CQES, id.NN = d.mdts, 0x66, 0x44, d.nn
		case spec.CNSActiveNamespaces:
			for i := uint32(0); i < d.nn; i++ {
				binary.LittleEndian.PutUint32(buf[4*i:], i+1)
			}
		case spec.CNSNamespace:
			if cmd.NSID == 0 || cmd.NSID > d.nn {
				return gen(spec.SCInvalidNamespaceOrFormat), 0
			}
			ns := (*spec.IdentifyNamespace)(unsafe.Pointer(&buf[0]))
			ns.NSZE, ns.NCAP = 1<<20, 1<<20
			ns.LBAF[0] = spec.MakeLBAFormat(0, 9, 0)
		default:
			return gen(spec.SCInvalidField), 0
		}
	case spec.AdminSetFeatures:
		if cmd.CDW10&0xFF != spec.FeatureNumberOfQueues {
			return gen(spec.SCInvalidField), 0
		}
		nsq, ncq := spec.DecodeNumberOfQueues(cmd.CDW11)
		return spec.StatusSuccess, spec.NumberOfQueues(uint16(min(nsq, 4)), uint16(min(ncq, 4)))
	case spec.AdminCreateIOCQ:
		qid, size := uint16(cmd.CDW10), uint16(cmd.CDW10>>16)+1
		if qid == 0 || qid > fakeMaxQID || d.cqs[qid] != nil {
			return cs(spec.SCInvalidQueueIdentifier), 0
		}
		if size > d.cap.MQES()+1 {
			return cs(spec.SCInvalidQueueSize), 0
		}
		d.cqs[qid] = &fakeQueue{base: cmd.PRP1, size: size, phase: 1}
	case spec.AdminCreateIOSQ:
		qid, size, cqid := uint16(cmd.CDW10), uint16(cmd.CDW10>>16)+1, uint16(cmd.CDW11>>16)
		if cqid > fakeMaxQID || d.cqs[cqid] == nil {
			return cs(spec.SCCompletionQueueInvalid), 0
		}
		if qid == 0 || qid > fakeMaxQID || d.sqs[qid] != nil {
			return cs(spec.SCInvalidQueueIdentifier), 0
		}
		d.sqs[qid] = &fakeQueue{base: cmd.PRP1, size: size, cqid: cqid}
	case spec.AdminDeleteIOSQ:
		if qid := uint16(cmd.CDW10); qid <= fakeMaxQID {
			d.sqs[qid] = nil
		}
	case spec.AdminDeleteIOCQ:
		if qid := uint16(cmd.CDW10); qid <= fakeMaxQID {
			d.cqs[qid] = nil
		}
	case spec.AdminGetLogPage:
		buf := d.mem(cmd.PRP1, spec.SMARTLogSize)
		log := (*spec.SMARTLog)(unsafe.Pointer(&buf[0]))
		spec.SetCounter128(&log.HostReadCommands, uint64(d.ioCount))
	default:
		return gen(spec.SCInvalidOpcode), 0
	}
	return spec.StatusSuccess, 0
}

func attachFake(t testing.TB, d *fakeDev) *Controller {
	t.Helper()
	c, err := Attach(d, d, Options{ReadyTimeout: 50_000_000, AdminTimeout: 1_000_000_000})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	return c
}
