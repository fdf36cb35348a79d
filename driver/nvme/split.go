package nvme

import (
	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// Splitting: a user I/O (the parent) larger than what one command may carry — the
// controller's maximum transfer (MDTS), the NLB field's 65536 blocks, or the io-unit
// size asked for (spdk_nvme_perf -O) — goes out as several commands (its children),
// each a contiguous run of blocks, as SPDK's driver does. The parent completes once,
// after its last child, so its latency covers them all; the first child that fails
// fails it, and children not yet issued are then dropped.
//
// Nothing is allocated per I/O: parents come from a pool of Depth slots, children
// from the queue pair's request slots. A parent that cannot get a slot for every child
// waits in a FIFO; each completion frees a slot, and the FIFO's head takes it from
// the completion callback, so the refill goes out with the same Poll's doorbell.

// maxNLB is the most blocks one command can name (NLB is 16 bits, 0's based).
const maxNLB = 65536

// maxSplitEntries caps the SQ size asked for by default for split I/O.
const maxSplitEntries = 1024

// layout is how a queue moves one namespace's blocks.
type layout struct {
	wireBlock  int    // bytes per block in the data transfer
	interleave bool   // extended LBA with metadata moving: data+metadata interleaved, staged in wire
	separate   bool   // separate metadata moving through MPTR
	hostPI     bool   // PRACT=0 on a PI namespace: nvmeperf generates the PI on writes
	hostCheck  bool   // and checks it on reads (pi.checks != 0)
	prinfo     uint32 // CDW12 PRINFO bits
	pi         piLayout
}

func newLayout(f Format, p target.Protection) layout {
	l := layout{wireBlock: int(f.LBASize)}
	l.pi = piLayout{typ: f.PIType, first: f.PIFirst, ms: int(f.MetadataSize), lbaSize: int(f.LBASize)}
	if f.MetadataSize == 0 {
		return l
	}
	mdMoves := true
	if f.PIType != 0 {
		// PRINFO only means something on a PI namespace; elsewhere -e is ignored,
		// as spdk_nvme_perf does.
		if p.Check&target.PICheckGuard != 0 {
			l.prinfo |= spec.RWPRCHKGuard
		}
		if p.Check&target.PICheckAppTag != 0 {
			l.prinfo |= spec.RWPRCHKAppTag
		}
		if p.Check&target.PICheckRefTag != 0 {
			l.prinfo |= spec.RWPRCHKRefTag
		}
		if p.Action {
			l.prinfo |= spec.RWPRACT
			// With only the PI as metadata, PRACT=1 moves data alone.
			mdMoves = f.MetadataSize != spec.PISize
		} else {
			l.hostPI = true
			l.pi.checks = uint8(l.prinfo >> spec.RWPRCHKShift)
			l.hostCheck = l.pi.checks != 0
		}
	}
	if mdMoves {
		if f.Extended {
			l.interleave = true
			l.wireBlock += int(f.MetadataSize)
		} else {
			l.separate = true
		}
	}
	return l
}

// parentIO is one user I/O in flight.
type parentIO struct {
	r        *target.Request
	buf      int
	slba     uint64
	nlb      uint32 // blocks in the I/O
	next     uint32 // blocks issued so far
	inflight int    // children issued and not completed
	write    bool
	failed   bool
	queued   bool // in splitQueue.pending
	err      error
}

// splitQueue holds the parents of one queue and the FIFOs they wait in.
type splitQueue struct {
	parents  []parentIO
	free     []*parentIO
	pending  ring // parents with children not yet issued, oldest first
	deferred ring // parents finished outside Poll, delivered by the next Poll
	reaped   int  // parents completed in the current Poll
}

// ring is a fixed-capacity FIFO of parents.
type ring struct {
	items       []*parentIO
	head, count int
}

func (r *ring) push(p *parentIO) {
	r.items[(r.head+r.count)%len(r.items)] = p
	r.count++
}

func (r *ring) peek() *parentIO { return r.items[r.head] }

func (r *ring) pop() *parentIO {
	p := r.items[r.head]
	r.items[r.head] = nil
	r.head = (r.head + 1) % len(r.items)
	r.count--
	return p
}

func (s *splitQueue) initSplit(depth int) {
	s.parents = make([]parentIO, depth)
	s.free = make([]*parentIO, depth)
	for i := range s.parents {
		s.free[i] = &s.parents[depth-1-i]
	}
	s.pending.items = make([]*parentIO, depth)
	s.deferred.items = make([]*parentIO, depth)
}

func (s *splitQueue) getParent() *parentIO {
	n := len(s.free)
	if n == 0 {
		return nil
	}
	p := s.free[n-1]
	s.free = s.free[:n-1]
	*p = parentIO{}
	return p
}

func (s *splitQueue) putParent(p *parentIO) {
	p.r, p.err = nil, nil
	s.free = append(s.free, p)
}

func (s *splitQueue) inUse() int { return len(s.parents) - len(s.free) }

func (q *nsQueue) enqueue(p *parentIO) {
	p.queued = true
	q.pending.push(p)
}

func (p *parentIO) fail(err error) {
	if p.err == nil {
		p.err = err
	}
	p.failed = true
}

// pump issues waiting children, oldest parent first, while the queue pair has free
// slots. A parent leaves the FIFO when all its children are issued or it failed.
func (q *nsQueue) pump() {
	for q.pending.count > 0 {
		p := q.pending.peek()
		for !p.failed && p.next < p.nlb && q.qp.Outstanding() < q.qp.Capacity() {
			if err := q.qp.Err(); err != nil {
				p.fail(err)
			} else if err := q.issue(p); err != nil {
				p.fail(err)
			}
		}
		if !p.failed && p.next < p.nlb {
			return // out of slots: wait for a completion
		}
		q.pending.pop()
		p.queued = false
		if p.inflight == 0 {
			// Failed before any child went out: nothing will call back for it.
			q.deferred.push(p)
		}
	}
}

// issueOne issues a parent that is one command, as pump does for the FIFO's head. p
// counts as queued while its command goes out: if the queue pair fails inside Submit
// and completes the command there, CommandDone must leave p alone, as it does for a
// parent pump is issuing; p is then delivered by the next Poll.
func (q *nsQueue) issueOne(p *parentIO) {
	p.queued = true
	if err := q.issue(p); err != nil {
		p.fail(err)
	}
	p.queued = false
	if p.inflight == 0 {
		q.deferred.push(p)
	}
}

// issue submits the next child of p.
func (q *nsQueue) issue(p *parentIO) error {
	nlb := min(q.unitBlocks, p.nlb-p.next)
	slba := p.slba + uint64(p.next)
	cmd := &q.cmd
	if p.write {
		q.ns.WriteCommand(cmd, slba, nlb)
	} else {
		q.ns.ReadCommand(cmd, slba, nlb)
	}
	cmd.CDW12 |= q.fua
	l := &q.layout
	if l.pi.typ != 0 {
		cmd.CDW12 |= l.prinfo
		cmd.CDW14 = uint32(slba)                  // expected initial reference tag
		cmd.CDW15 = 0xFFFF<<16 | uint32(piAppTag) // application tag mask and value
	}
	if l.separate {
		cmd.MPTR = q.meta.Addr + uint64(p.buf*q.metaStride+int(p.next)*l.pi.ms)
	}
	start := int(p.next) * l.wireBlock
	n := int(nlb) * l.wireBlock
	var data bus.Buffer
	if l.interleave {
		data = q.wire.Slice(p.buf*q.wireStride+q.offset+start, n)
	} else {
		data = q.bufs.Slice(p.buf*q.stride+q.offset+start, n)
	}
	// Count the child first: if ringing its doorbell finds the controller gone, the
	// queue pair fails inside Submit and completes the child (CommandDone) before
	// Submit returns.
	p.next += nlb
	p.inflight++
	if err := q.qp.Submit(cmd, data, q, p); err != nil {
		if q.qp.Err() == nil {
			// Refused before it was queued: no completion will come.
			p.next -= nlb
			p.inflight--
		}
		return err
	}
	return nil
}

// CommandDone implements Callback for the children: the parent completes after its
// last child, with the first error any child had.
func (q *nsQueue) CommandDone(arg any, cpl *spec.Completion) {
	p := arg.(*parentIO)
	p.inflight--
	if st := cpl.StatusField(); !st.OK() {
		if st.More() {
			q.ns.ctrl.wantErrorLog() // aer.go
		}
		if err := q.qp.Err(); err != nil {
			p.fail(err)
		} else if p.err == nil {
			p.fail(StatusErrorFor(false, q.qp.Command(cpl.CID), st))
		} else {
			p.failed = true
		}
	}
	if p.inflight == 0 && !p.queued && (p.failed || p.next == p.nlb) {
		q.finish(p)
	}
	if q.qp.Err() == nil {
		q.pump() // the slot this child held is free
	}
}

// finish completes a parent: a read's data leaves the staging buffers and its PI is
// checked, then the handler is told.
func (q *nsQueue) finish(p *parentIO) {
	r := p.r
	if p.err == nil && !p.write {
		p.err = q.finishRead(p)
	}
	r.Err = p.err
	q.putParent(p)
	q.reaped++
	q.handler.Complete(r)
}

// failPending fails every parent still waiting for slots once the queue pair failed;
// those with children out were completed by the queue pair's abort.
func (q *nsQueue) failPending(err error) {
	for q.pending.count > 0 {
		p := q.pending.pop()
		p.queued = false
		p.fail(err)
		if p.inflight == 0 {
			q.deferred.push(p)
		}
	}
}

func (q *nsQueue) deliverDeferred() {
	for q.deferred.count > 0 {
		q.finish(q.deferred.pop())
	}
}

// prepareWrite stages a write: on extended LBAs the data is interleaved with its
// metadata in the transfer buffer; metadata is zeroed and, when nvmeperf owns the PI
// (PRACT=0), each block's PI is generated.
func (q *nsQueue) prepareWrite(p *parentIO) {
	l := &q.layout
	if !l.interleave && !l.separate {
		return
	}
	lba, ms := l.pi.lbaSize, l.pi.ms
	data := q.Buffer(p.buf)
	for i := 0; i < int(p.nlb); i++ {
		d := data[i*lba : (i+1)*lba]
		var md []byte
		if l.interleave {
			w := q.wire.Bytes[p.buf*q.wireStride+q.offset+i*l.wireBlock:]
			copy(w, d)
			md = w[lba : lba+ms]
		} else {
			md = q.meta.Bytes[p.buf*q.metaStride+i*ms : p.buf*q.metaStride+(i+1)*ms]
		}
		clear(md)
		if l.hostPI {
			l.pi.generate(p.slba+uint64(i), d, md)
		}
	}
}

// finishRead moves an extended-LBA read's data out of the transfer buffer and checks
// each block's PI when nvmeperf owns it.
func (q *nsQueue) finishRead(p *parentIO) error {
	l := &q.layout
	if !l.interleave && !l.hostCheck {
		return nil
	}
	lba, ms := l.pi.lbaSize, l.pi.ms
	data := q.Buffer(p.buf)
	for i := 0; i < int(p.nlb); i++ {
		d := data[i*lba : (i+1)*lba]
		var md []byte
		if l.interleave {
			w := q.wire.Bytes[p.buf*q.wireStride+q.offset+i*l.wireBlock:]
			copy(d, w[:lba])
			md = w[lba : lba+ms]
		} else {
			md = q.meta.Bytes[p.buf*q.metaStride+i*ms : p.buf*q.metaStride+(i+1)*ms]
		}
		if l.hostCheck {
			if err := l.pi.check(p.slba+uint64(i), d, md); err != nil {
				return err
			}
		}
	}
	return nil
}
