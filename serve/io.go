package serve

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/nvmetcp"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// An I/O connection has one slot per submission queue entry. The reader goroutine
// takes a free slot for each command capsule, fills in the command and its data
// (in-capsule, or by H2CData after the executor's R2T) and hands the slot to the
// executor over a channel; the executor submits it to the namespace's backend queue,
// answers when it completes, and frees the slot after the answer is written. The
// data buffer of slot i is buffer i of the backend queue, so data moves from the
// socket into the backend's (DMA) memory and back with no copy in between.

type ioSlot struct {
	cid    uint16
	op     uint8
	ns     int
	slba   uint64
	length uint32
	inCap  bool
	status spec.Status // a failure found before execution
	buf    []byte
	req    target.Request
}

// readerSlot is the reader's own per-slot state for data arriving by H2CData.
type readerSlot struct {
	awaiting bool
	received uint32
}

const (
	evReady = iota // the command and its data are here: execute it
	evR2T          // a write needs its data: send an R2T
	evEnd          // the reader stopped (err says why)
)

type ioEvent struct {
	kind uint8
	slot uint16
	err  error
}

type backend struct {
	q    target.Queue
	bufs [][]byte
}

type executor struct {
	c           *conn
	slots       []ioSlot
	backends    []backend
	free        chan uint16
	events      chan ioEvent
	toFree      []uint16
	outstanding int
	completed   uint64
	inflight    atomic.Int32 // commands received and not yet answered
	badHeader   []byte       // the PDU header a protocol error was found in, for the TermReq
	// SMART / Health counts (health.go): io is this goroutine's own tally, published to
	// counters before each batch of answers is written.
	io       ioTotals
	ioDirty  bool
	counters *ioCounters
}

func (c *conn) runIO() error {
	// A slot is freed once its answer is written, but the host may reuse the queue
	// entry as soon as it reads the answer: twice the queue's entries cover both.
	n := 2 * c.sqsize
	e := &executor{c: c, slots: make([]ioSlot, n), free: make(chan uint16, n),
		events: make(chan ioEvent, 2*n+2), toFree: make([]uint16, 0, n), counters: &ioCounters{}}
	for i := range n {
		e.free <- uint16(i)
	}
	defer e.closeBackends()
	for i, t := range c.s.cfg.Namespaces {
		q, err := t.OpenQueue(target.QueueConfig{Depth: c.sqsize, Buffers: n, IOSize: c.s.mdts, Handler: e})
		if err != nil {
			return fmt.Errorf("serve: I/O queue %d: opening namespace %d's backend queue: %w", c.qid, i+1, err)
		}
		b := backend{q: q, bufs: make([][]byte, n)}
		for j := range n {
			b.bufs[j] = q.Buffer(j)
		}
		e.backends = append(e.backends, b)
	}
	c.s.registerIO(e.counters)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		err := c.ioRead(e)
		var pe *nvmetcp.ProtocolError
		if errors.As(err, &pe) {
			e.badHeader = append([]byte(nil), c.r.RawHeader()...)
		}
		e.events <- ioEvent{kind: evEnd, err: err}
	}()
	err := e.loop()
	// Stop the reader before the backend buffers it writes into go away.
	var pe *nvmetcp.ProtocolError
	if errors.As(err, &pe) { // only the reader reports these, after setting badHeader
		c.fail(err, e.badHeader)
	}
	c.nc.Close()
	<-readerDone
	e.drain()
	e.counters.store(&e.io)
	c.s.foldIO(e.counters)
	c.s.addCommands(e.completed, false)
	return nil
}

func (e *executor) loop() error {
	c := e.c
	for {
		progressed := false
		if e.outstanding == 0 && c.w.Queued() == 0 {
			if err := e.handle(<-e.events); err != nil {
				return err
			}
			progressed = true
		}
		for more := true; more; {
			select {
			case ev := <-e.events:
				if err := e.handle(ev); err != nil {
					return err
				}
				progressed = true
			default:
				more = false
			}
		}
		if e.outstanding > 0 {
			for i := range e.backends {
				q := e.backends[i].q
				if q.Outstanding() == 0 {
					continue
				}
				// A failing backend completes its commands with errors, which reach
				// the host as statuses; the error itself adds nothing here.
				if n, _ := q.Poll(); n > 0 {
					progressed = true
				}
			}
		}
		if c.w.Queued() > 0 {
			// Counted before the host can see the answers, so a SMART read after them
			// includes them.
			if e.ioDirty {
				e.counters.store(&e.io)
				e.ioDirty = false
			}
			if err := c.w.Flush(); err != nil {
				return err
			}
			for _, i := range e.toFree {
				e.free <- i
			}
			e.toFree = e.toFree[:0]
			progressed = true
		}
		if !progressed {
			runtime.Gosched()
		}
	}
}

func (e *executor) handle(ev ioEvent) error {
	switch ev.kind {
	case evEnd:
		if ev.err == nil {
			return errClosedByHost
		}
		return ev.err
	case evR2T:
		s := &e.slots[ev.slot]
		e.c.w.R2T(s.cid, ev.slot, 0, s.length)
		return nil
	}
	e.execute(int(ev.slot))
	return nil
}

// execute runs a command whose data is complete.
func (e *executor) execute(i int) {
	s := &e.slots[i]
	e.c.advanceSQHD()
	if s.status != 0 {
		e.finish(i, s.status)
		return
	}
	switch spec.IOOpcode(s.op) {
	case spec.IOFlush:
		// Data handed to the backend is as durable as the backend makes it; a flush has
		// nothing left to push.
		e.finish(i, 0)
		return
	}
	b := &e.backends[s.ns]
	lba := uint64(e.c.s.lbaSize[s.ns])
	s.req = target.Request{Op: target.OpRead, Offset: s.slba * lba, Length: s.length, Buf: i, Tag: i}
	if spec.IOOpcode(s.op) == spec.IOWrite {
		s.req.Op = target.OpWrite
	}
	if err := b.q.Submit(&s.req); err != nil {
		e.finish(i, statusFor(err))
		return
	}
	e.outstanding++
}

// Complete is the backend queues' completion handler (called from Poll).
func (e *executor) Complete(r *target.Request) {
	e.outstanding--
	e.finish(r.Tag, statusFor(r.Err))
}

// finish queues a command's answer: data and a response capsule, or (SQ flow control
// disabled) data carrying the SUCCESS flag alone.
func (e *executor) finish(i int, st spec.Status) {
	c := e.c
	s := &e.slots[i]
	cpl := spec.Completion{CID: s.cid, Status: uint16(st) << 1}
	if st == 0 {
		switch spec.IOOpcode(s.op) {
		case spec.IORead:
			e.io.readCmds++
			e.io.readUnits += uint64(s.length / bytesPerDataUnit)
			e.ioDirty = true
		case spec.IOWrite:
			e.io.writeCmds++
			e.io.writeUnits += uint64(s.length / bytesPerDataUnit)
			e.ioDirty = true
		}
	}
	if st == 0 && spec.IOOpcode(s.op) == spec.IORead && s.length > 0 {
		c.w.C2HData(s.cid, 0, s.buf[:s.length], true, c.sqflowOff)
		if !c.sqflowOff {
			c.respond(&cpl)
		}
	} else {
		c.respond(&cpl)
	}
	e.completed++
	e.inflight.Add(-1)
	e.toFree = append(e.toFree, uint16(i))
}

// statusFor maps a backend error to the NVMe status the host gets: the device's own
// status when the backend is an NVMe controller, else a generic one.
func statusFor(err error) spec.Status {
	if err == nil {
		return 0
	}
	var se *nvme.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	if errors.Is(err, nvme.ErrFailed) {
		return spec.MakeStatus(spec.SCTGeneric, spec.SCInternalError).WithDNR()
	}
	return spec.MakeStatus(spec.SCTMediaDataIntegrity, spec.SCUnrecoveredReadError)
}

// drain waits (bounded) for backend commands still in flight, so their buffers are not
// released under the device, then answers nothing more.
func (e *executor) drain() {
	deadline := time.Now().Add(10 * time.Second)
	for e.outstanding > 0 && time.Now().Before(deadline) {
		progressed := false
		for i := range e.backends {
			if e.backends[i].q.Outstanding() > 0 {
				if n, _ := e.backends[i].q.Poll(); n > 0 {
					progressed = true
				}
			}
		}
		if !progressed {
			runtime.Gosched()
		}
	}
}

func (e *executor) closeBackends() {
	for _, b := range e.backends {
		_ = b.q.Close()
	}
}

// ioRead is the reader goroutine of an I/O connection.
func (c *conn) ioRead(e *executor) error {
	n := len(e.slots)
	rs := make([]readerSlot, n)
	for {
		h, err := c.r.Next()
		if err != nil {
			return err
		}
		switch h.CH.Type {
		case nvmetcp.TypeCapsuleCmd:
			var i uint16
			if int(e.inflight.Add(1)) > c.sqsize {
				return &nvmetcp.ProtocolError{FES: nvmetcp.FESPDUSequenceError,
					Msg: fmt.Sprintf("more commands outstanding than the queue's %d entries", c.sqsize)}
			}
			select {
			case i = <-e.free:
			default: // cannot happen: see runIO
				return &nvmetcp.ProtocolError{FES: nvmetcp.FESPDUSequenceError, Msg: "no free command slot"}
			}
			s := &e.slots[i]
			c.decodeIO(e, i, &h.CapsuleCmd.SQE)
			if h.DataLen > 0 {
				if h.DataLen > c.s.cfg.InCapsuleData {
					return &nvmetcp.ProtocolError{FES: nvmetcp.FESDataOutOfRange, FEI: 4,
						Msg: fmt.Sprintf("%d bytes of in-capsule data, at most %d", h.DataLen, c.s.cfg.InCapsuleData)}
				}
				if s.status != 0 || !s.inCap || spec.IOOpcode(s.op) != spec.IOWrite || uint32(h.DataLen) != s.length {
					if err := c.r.Discard(); err != nil {
						return err
					}
					if s.status == 0 {
						s.status = spec.MakeStatus(spec.SCTGeneric, spec.SCDataSGLLengthInvalid).WithDNR()
					}
				} else if err := c.r.ReadData(s.buf[:s.length]); err != nil {
					var de *nvmetcp.DataDigestError
					if !errors.As(err, &de) {
						return err
					}
					s.status = spec.MakeStatus(spec.SCTGeneric, spec.SCTransientTransportError)
				}
			} else if s.status == 0 && spec.IOOpcode(s.op) == spec.IOWrite && s.length > 0 {
				if s.inCap {
					s.status = spec.MakeStatus(spec.SCTGeneric, spec.SCDataSGLLengthInvalid).WithDNR()
				} else {
					rs[i] = readerSlot{awaiting: true}
					e.events <- ioEvent{kind: evR2T, slot: i}
					continue
				}
			}
			e.events <- ioEvent{kind: evReady, slot: i}
		case nvmetcp.TypeH2CData:
			d := &h.H2CData
			if int(d.TTAG) >= n || !rs[d.TTAG].awaiting || e.slots[d.TTAG].cid != d.CCCID {
				return &nvmetcp.ProtocolError{FES: nvmetcp.FESInvalidHeaderField, FEI: 10,
					Msg: fmt.Sprintf("H2CData for CID %d with transfer tag %d answers no R2T", d.CCCID, d.TTAG)}
			}
			r := &rs[d.TTAG]
			s := &e.slots[d.TTAG]
			if d.DATAO != r.received {
				return &nvmetcp.ProtocolError{FES: nvmetcp.FESDataOutOfRange, FEI: 12,
					Msg: fmt.Sprintf("H2CData offset %d, expected %d", d.DATAO, r.received)}
			}
			if d.DATAL > c.s.cfg.MaxH2CData || uint64(d.DATAO)+uint64(d.DATAL) > uint64(s.length) {
				return &nvmetcp.ProtocolError{FES: nvmetcp.FESDataOutOfRange, FEI: 16,
					Msg: fmt.Sprintf("H2CData of %d bytes at %d: beyond the R2T's %d bytes or MAXH2CDATA %d",
						d.DATAL, d.DATAO, s.length, c.s.cfg.MaxH2CData)}
			}
			last := d.CH.Flags&nvmetcp.FlagLastPDU != 0
			if err := c.r.ReadData(s.buf[d.DATAO : d.DATAO+d.DATAL]); err != nil {
				var de *nvmetcp.DataDigestError
				if !errors.As(err, &de) {
					return err
				}
				s.status = spec.MakeStatus(spec.SCTGeneric, spec.SCTransientTransportError)
			}
			r.received += d.DATAL
			done := r.received == s.length
			// LAST_PDU early is an error. Hosts differ on setting it at the end (older
			// Linux hosts sent one H2CData per R2T and always set it; newer ones set it
			// on the last chunk), so the byte count decides when the data is complete.
			if last && !done {
				return &nvmetcp.ProtocolError{FES: nvmetcp.FESInvalidHeaderField, FEI: 1,
					Msg: fmt.Sprintf("H2CData LAST_PDU with %d of %d bytes received", r.received, s.length)}
			}
			if done {
				r.awaiting = false
				e.events <- ioEvent{kind: evReady, slot: d.TTAG}
			}
		case nvmetcp.TypeH2CTermReq:
			return errClosedByHost
		default:
			return &nvmetcp.ProtocolError{FES: nvmetcp.FESPDUSequenceError,
				Msg: fmt.Sprintf("%s on an I/O queue", h.CH.Type)}
		}
	}
}

// decodeIO fills slot i from an I/O command, setting its status when the command is
// invalid.
func (c *conn) decodeIO(e *executor, i uint16, sqe *spec.Command) {
	s := &e.slots[i]
	*s = ioSlot{cid: sqe.CID(), op: sqe.Opcode(), ns: -1}
	fail := func(sct spec.StatusCodeType, sc uint8) { s.status = spec.MakeStatus(sct, sc).WithDNR() }
	nn := uint32(len(c.s.cfg.Namespaces))
	switch spec.IOOpcode(s.op) {
	case spec.IOFlush:
		if sqe.NSID != 0xFFFFFFFF && (sqe.NSID == 0 || sqe.NSID > nn) {
			fail(spec.SCTGeneric, spec.SCInvalidNamespaceOrFormat)
		}
		return
	case spec.IORead, spec.IOWrite:
	default:
		fail(spec.SCTGeneric, spec.SCInvalidOpcode)
		return
	}
	if sqe.NSID == 0 || sqe.NSID > nn {
		fail(spec.SCTGeneric, spec.SCInvalidNamespaceOrFormat)
		return
	}
	ns := int(sqe.NSID - 1)
	desc, err := nvmetcp.CommandData(sqe)
	if err != nil {
		fail(spec.SCTGeneric, spec.SCSGLTypeInvalid)
		return
	}
	slba, nlb := sqe.SLBA(), uint64(sqe.NLB())
	blocks := c.s.blocks[ns]
	if slba >= blocks || nlb > blocks-slba {
		fail(spec.SCTGeneric, spec.SCLBAOutOfRange)
		return
	}
	length := nlb * uint64(c.s.lbaSize[ns])
	if length > uint64(c.s.mdts) {
		fail(spec.SCTGeneric, spec.SCInvalidField)
		return
	}
	if uint64(desc.Length) != length || (desc.InCapsule && spec.IOOpcode(s.op) == spec.IORead) {
		fail(spec.SCTGeneric, spec.SCDataSGLLengthInvalid)
		return
	}
	s.ns, s.slba, s.length, s.inCap = ns, slba, uint32(length), desc.InCapsule
	s.buf = e.backends[ns].bufs[i]
}
