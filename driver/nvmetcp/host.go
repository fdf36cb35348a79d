package nvmetcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// HostConfig says where and how a host connects to an NVMe/TCP controller.
type HostConfig struct {
	// Addr is the controller's address and port ("192.168.0.2:4420", "[::1]:4420").
	Addr string
	// SubNQN is the NVM subsystem (or spec.DiscoveryNQN for the discovery controller).
	SubNQN string
	// HostNQN and HostID identify this host in Connect; DefaultHostNQN gives the
	// machine's stable pair.
	HostNQN string
	HostID  [16]byte
	// Digests asks for header and/or data digests in ICReq; the controller must grant
	// what is asked.
	Digests Digests
	// SQFlowControl keeps SQ flow control on in the I/O queues' Connect. Off (the
	// default) lets the controller answer successful reads with a C2HData carrying
	// SUCCESS and no response capsule, as SPDK and Linux hosts do; nvmeperf never
	// submits more than a queue holds, so it needs no SQ head reports.
	SQFlowControl bool
	// ConnectTimeout bounds the TCP connect, ICReq/ICResp and Fabrics Connect of each
	// queue; 0 means 10 s.
	ConnectTimeout time.Duration
}

// Host is the NVMe/TCP host transport of one controller: an nvme.Fabric whose queue
// pairs are TCP connections. Give it to nvme.AttachFabric.
type Host struct {
	cfg HostConfig

	mu     sync.Mutex
	cntlid uint16 // from the admin queue's Connect
	admin  bool   // the admin queue is connected
}

var _ nvme.Fabric = (*Host)(nil)

// NewHost returns the transport; nothing is connected before ConnectQueue.
func NewHost(cfg HostConfig) *Host {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	return &Host{cfg: cfg}
}

// Name implements nvme.Fabric.
func (h *Host) Name() string { return "TCP" }

// ControllerID is the CNTLID the admin queue's Connect returned.
func (h *Host) ControllerID() uint16 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cntlid
}

// Alloc implements bus.Allocator with ordinary memory: data reaches the wire by copy
// (writev, read), so it needs no device address.
func (h *Host) Alloc(size int) (bus.Buffer, error) {
	if size <= 0 {
		return bus.Buffer{}, fmt.Errorf("nvmetcp: allocating %d bytes", size)
	}
	return bus.Buffer{Bytes: make([]byte, size)}, nil
}

// Free implements bus.Allocator.
func (h *Host) Free(bus.Buffer) error { return nil }

// Close implements nvme.Fabric: the queues are closed by their owners.
func (h *Host) Close() error { return nil }

// ConnectQueue implements nvme.Fabric: a TCP connection, ICReq/ICResp and a Fabrics
// Connect (CNTLID FFFFh for the admin queue, the admin queue's CNTLID for I/O queues).
func (h *Host) ConnectQueue(cfg nvme.FabricQueueConfig) (nvme.FabricQueue, error) {
	return h.ConnectQueueContext(context.Background(), cfg)
}

var _ nvme.FabricContextConnector = (*Host)(nil)

// ConnectQueueContext implements nvme.FabricContextConnector: ConnectQueue that ends as
// soon as ctx is done — the dial is cancelled, or the connection closed under the
// ICReq/Connect exchange — so a queue pair freed while it reconnects in the background
// waits for nothing.
func (h *Host) ConnectQueueContext(ctx context.Context, cfg nvme.FabricQueueConfig) (nvme.FabricQueue, error) {
	h.mu.Lock()
	cntlid, admin := h.cntlid, h.admin
	h.mu.Unlock()
	if cfg.QID == 0 {
		cntlid = spec.ControllerIDDynamic
	} else if !admin {
		return nil, errors.New("nvmetcp: an I/O queue needs the admin queue connected first")
	}
	if cfg.Entries < 2 || cfg.Entries > 65536 || cfg.Requests < 1 || cfg.Requests >= cfg.Entries {
		return nil, fmt.Errorf("nvmetcp: queue of %d entries with %d requests", cfg.Entries, cfg.Requests)
	}
	d := net.Dialer{Timeout: h.cfg.ConnectTimeout}
	nc, err := d.DialContext(ctx, "tcp", h.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("nvmetcp: connecting to %s: %w", h.cfg.Addr, err)
	}
	q, err := newHostQueue(nc, h.cfg, cfg)
	if err == nil {
		// Closing the connection is what ends a blocked read or write at once.
		stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
		err = q.connect(h.cfg, cfg, cntlid)
		if !stop() && ctx.Err() != nil {
			err = fmt.Errorf("connecting was called off: %w", ctx.Err())
		}
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nvmetcp: queue %d at %s: %w", cfg.QID, h.cfg.Addr, err)
	}
	if cfg.QID == 0 {
		h.mu.Lock()
		h.cntlid, h.admin = q.cntlid, true
		h.mu.Unlock()
	}
	return q, nil
}

// errWouldBlock is what the socket reader says in poll mode when nothing has arrived.
var errWouldBlock = errors.New("nvmetcp: no data ready")

// hostSlot is the transport state of one outstanding command.
type hostSlot struct {
	data      []byte
	cid       uint16
	active    bool
	write     bool
	got       uint32 // C2H bytes received, or H2C bytes sent
	digestErr bool   // a C2HData's data digest failed: the command fails
}

// hostQueue is one queue pair's connection. It belongs to the QPair's goroutine.
type hostQueue struct {
	nc        net.Conn
	sock      sockReader
	r         *Reader
	w         *Writer
	qid       uint16
	cntlid    uint16
	inCapsule int
	maxH2C    uint32
	mask      uint16
	slots     []hostSlot
	resp      spec.Completion // a completion made from a C2HData's SUCCESS flag
	failed    error
	closed    bool
}

func newHostQueue(nc net.Conn, hc HostConfig, cfg nvme.FabricQueueConfig) (*hostQueue, error) {
	q := &hostQueue{nc: nc, qid: cfg.QID, inCapsule: cfg.InCapsuleData, mask: cfg.CIDMask,
		slots: make([]hostSlot, int(cfg.CIDMask)+1)}
	if err := q.sock.init(nc); err != nil {
		return nil, err
	}
	maxData := max(cfg.MaxTransfer, 64<<10)
	q.r = NewReader(&q.sock, 256<<10, maxData)
	q.w = NewWriter(nc, 64<<10)
	return q, nil
}

// connect runs ICReq/ICResp and the Fabrics Connect, blocking, within the timeout.
func (q *hostQueue) connect(hc HostConfig, cfg nvme.FabricQueueConfig, cntlid uint16) error {
	_ = q.nc.SetDeadline(time.Now().Add(hc.ConnectTimeout))
	defer q.nc.SetDeadline(time.Time{})
	q.w.ICReq(0, hc.Digests, 0)
	if err := q.w.Flush(); err != nil {
		return fmt.Errorf("sending ICReq: %w", err)
	}
	h, err := q.r.Next()
	if err != nil {
		return fmt.Errorf("reading ICResp: %w", err)
	}
	switch h.CH.Type {
	case TypeICResp:
	case TypeC2HTermReq:
		return fmt.Errorf("the controller refused the connection: %s", termReqText(&h.TermReq))
	default:
		return fmt.Errorf("got %s, want ICResp", h.CH.Type)
	}
	if got := DigestsFromBits(h.ICResp.DGST); got != hc.Digests {
		return fmt.Errorf("digests asked %s, the controller enabled %s", digestText(hc.Digests), digestText(got))
	}
	q.maxH2C = h.ICResp.MAXH2CDATA
	q.r.SetDigests(hc.Digests)
	q.w.SetDigests(hc.Digests)
	q.w.SetDataAlignment(h.ICResp.CPDA)

	cc := spec.ConnectCommand{Opcode: spec.OpcodeFabrics, FCType: uint8(spec.FabricsConnect),
		QID: cfg.QID, SQSIZE: uint16(cfg.Entries - 1)}
	if cfg.QID == 0 {
		cc.KATO = uint32(cfg.KeepAlive / time.Millisecond)
	} else if !hc.SQFlowControl {
		cc.CATTR = spec.ConnectDisableSQFlowCtrl
	}
	var cd spec.ConnectData
	cd.HostID = hc.HostID
	cd.CNTLID = cntlid
	cd.SetNQNs(hc.SubNQN, hc.HostNQN)
	data := make([]byte, spec.ConnectDataSize)
	cd.Marshal(data)
	sqe := cc.ToCommand()
	SetCommandData(&sqe, uint32(len(data)), true)
	q.w.CapsuleCmd(&sqe, data)
	if err := q.w.Flush(); err != nil {
		return fmt.Errorf("sending Connect: %w", err)
	}
	for {
		h, err := q.r.Next()
		if err != nil {
			return fmt.Errorf("waiting for the Connect response: %w", err)
		}
		switch h.CH.Type {
		case TypeCapsuleResp:
		case TypeC2HTermReq:
			return fmt.Errorf("the controller ended the connection: %s", termReqText(&h.TermReq))
		default:
			return fmt.Errorf("got %s in answer to Connect", h.CH.Type)
		}
		cpl := h.CapsuleResp.CQE
		if st := cpl.StatusField(); !st.OK() {
			msg := fmt.Sprintf("Connect to %s (queue %d, CNTLID %#x, host %s) failed: %s", hc.SubNQN, cfg.QID, cntlid, hc.HostNQN, st)
			if st.SCT() == spec.SCTCommandSpecific && st.SC() == spec.SCConnectInvalidParameters {
				where := "command"
				if cpl.DW0&1 != 0 {
					where = "data"
				}
				msg += fmt.Sprintf(" (the field at byte %d of the Connect %s)", cpl.DW0>>16, where)
			}
			return errors.New(msg)
		}
		q.cntlid = uint16(cpl.DW0)
		return nil
	}
}

func digestText(d Digests) string {
	switch {
	case d.Header && d.Data:
		return "header and data"
	case d.Header:
		return "header only"
	case d.Data:
		return "data only"
	}
	return "none"
}

func termReqText(t *TermReq) string {
	return fmt.Sprintf("C2HTermReq %s (fatal error status %#x, information %#x)", fesText(t.FES), t.FES, t.Info())
}

func fesText(fes uint16) string {
	switch fes {
	case FESInvalidHeaderField:
		return "invalid PDU header field"
	case FESPDUSequenceError:
		return "PDU sequence error"
	case FESHeaderDigestError:
		return "header digest error"
	case FESDataOutOfRange:
		return "data transfer out of range"
	case FESLimitExceeded:
		return "R2T limit exceeded"
	case FESUnsupportedParameter:
		return "unsupported parameter"
	}
	return "unknown error"
}

// Submit implements nvme.FabricQueue. Writes up to the in-capsule size travel in the
// capsule; larger writes wait for the controller's R2T; reads come back as C2HData.
func (q *hostQueue) Submit(cmd *spec.Command, data []byte) error {
	if q.failed != nil {
		return q.failed
	}
	cid := cmd.CID()
	s := &q.slots[cid&q.mask]
	if s.active {
		return fmt.Errorf("nvmetcp: queue %d: command slot %d is still in use", q.qid, cid&q.mask)
	}
	write := false
	if len(data) > 0 {
		switch cmd.Opcode() & 3 {
		case 1:
			write = true
		case 2:
		default:
			return fmt.Errorf("nvmetcp: opcode %#02x with data has no single direction", cmd.Opcode())
		}
	}
	*s = hostSlot{data: data, cid: cid, active: true, write: write}
	switch {
	case write && len(data) <= q.inCapsule:
		SetCommandData(cmd, uint32(len(data)), true)
		s.got = uint32(len(data))
		q.w.CapsuleCmd(cmd, data)
	default:
		SetCommandData(cmd, uint32(len(data)), false)
		q.w.CapsuleCmd(cmd, nil)
	}
	return nil
}

// midPDUTimeout bounds the wait for the rest of a PDU that has begun to arrive (a
// variable for tests).
var midPDUTimeout = 30 * time.Second

// maxPDUsPerProcess bounds one Process, so a controller that never stops sending
// cannot keep a poll from returning.
const maxPDUsPerProcess = 1024

// Process implements nvme.FabricQueue.
func (q *hostQueue) Process(done nvme.Completer) error {
	if q.failed != nil {
		return q.failed
	}
	for range maxPDUsPerProcess {
		if q.r.Buffered() == 0 {
			// Nothing buffered: ask the socket without blocking. Once a PDU has begun,
			// the rest of it is read blocking: the controller sends PDUs whole.
			q.sock.poll = true
			err := q.r.Fill()
			q.sock.poll = false
			if err == errWouldBlock {
				break
			}
			if err != nil {
				return q.fail(q.streamError(err))
			}
		}
		q.sock.midPDU = midPDUTimeout
		err := q.handle(done)
		q.sock.midPDU = 0
		if err != nil {
			return q.fail(err)
		}
	}
	if err := q.w.Flush(); err != nil {
		if closedByPeer(err) {
			return q.fail(fmt.Errorf("nvmetcp: queue %d: the controller closed the connection (%w)", q.qid, err))
		}
		return q.fail(fmt.Errorf("nvmetcp: queue %d: sending: %w", q.qid, err))
	}
	return nil
}

// closedByPeer reports a stream the controller ended: end of stream, reset or a broken
// pipe.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (q *hostQueue) streamError(err error) error {
	if closedByPeer(err) {
		return fmt.Errorf("nvmetcp: queue %d: the controller closed the connection", q.qid)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("nvmetcp: queue %d: the controller sent part of a PDU and nothing more for %v", q.qid, midPDUTimeout)
	}
	return fmt.Errorf("nvmetcp: queue %d: reading: %w", q.qid, err)
}

func (q *hostQueue) slot(cid uint16) *hostSlot {
	s := &q.slots[cid&q.mask]
	if !s.active || s.cid != cid {
		return nil
	}
	return s
}

// handle reads one PDU and acts on it.
func (q *hostQueue) handle(done nvme.Completer) error {
	h, err := q.r.Next()
	if err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) {
			return q.terminate(pe)
		}
		return q.streamError(err)
	}
	switch h.CH.Type {
	case TypeCapsuleResp:
		cpl := &h.CapsuleResp.CQE
		if s := q.slot(cpl.CID); s != nil {
			if s.digestErr && cpl.StatusField().OK() {
				cpl.Status = uint16(spec.MakeStatus(spec.SCTGeneric, spec.SCTransientTransportError)) << 1
			}
			s.active, s.data = false, nil
		}
		done.Complete(cpl) // a stray CID is counted by the queue pair
	case TypeC2HData:
		d := &h.C2HData
		s := q.slot(d.CCCID)
		if s == nil || s.write {
			return q.terminate(&ProtocolError{FES: FESInvalidHeaderField, FEI: 8,
				Msg: fmt.Sprintf("C2HData for CID %#x, which is no read in flight", d.CCCID)})
		}
		if d.DATAO != s.got || uint64(d.DATAO)+uint64(d.DATAL) > uint64(len(s.data)) {
			return q.terminate(&ProtocolError{FES: FESDataOutOfRange, FEI: 12,
				Msg: fmt.Sprintf("C2HData for CID %#x at %d+%d: expected offset %d of %d bytes", d.CCCID, d.DATAO, d.DATAL, s.got, len(s.data))})
		}
		if err := q.r.ReadData(s.data[d.DATAO : d.DATAO+d.DATAL]); err != nil {
			if _, ok := err.(*DataDigestError); !ok {
				return q.streamError(err)
			}
			s.digestErr = true
		}
		s.got += d.DATAL
		if d.CH.Flags&FlagSuccess != 0 {
			if s.got != uint32(len(s.data)) {
				return q.terminate(&ProtocolError{FES: FESPDUSequenceError, FEI: 1,
					Msg: fmt.Sprintf("C2HData with SUCCESS for CID %#x after %d of %d bytes", d.CCCID, s.got, len(s.data))})
			}
			q.resp = spec.Completion{CID: d.CCCID, SQID: q.qid}
			if s.digestErr {
				q.resp.Status = uint16(spec.MakeStatus(spec.SCTGeneric, spec.SCTransientTransportError)) << 1
			}
			s.active, s.data = false, nil
			done.Complete(&q.resp)
		}
	case TypeR2T:
		r := &h.R2T
		s := q.slot(r.CCCID)
		if s == nil || !s.write {
			return q.terminate(&ProtocolError{FES: FESInvalidHeaderField, FEI: 8,
				Msg: fmt.Sprintf("R2T for CID %#x, which is no write in flight", r.CCCID)})
		}
		end := uint64(r.R2TO) + uint64(r.R2TL)
		if r.R2TL == 0 || end > uint64(len(s.data)) {
			return q.terminate(&ProtocolError{FES: FESDataOutOfRange, FEI: 16,
				Msg: fmt.Sprintf("R2T for CID %#x asks for %d+%d of %d bytes", r.CCCID, r.R2TO, r.R2TL, len(s.data))})
		}
		for off := uint64(r.R2TO); off < end; {
			n := min(uint64(q.maxH2C), end-off)
			q.w.H2CData(r.CCCID, r.TTAG, uint32(off), s.data[off:off+n], off+n == end)
			off += n
		}
		s.got = uint32(end)
	case TypeC2HTermReq:
		return fmt.Errorf("nvmetcp: queue %d: the controller ended the connection: %s", q.qid, termReqText(&h.TermReq))
	default:
		return q.terminate(&ProtocolError{FES: FESInvalidHeaderField, FEI: 0,
			Msg: fmt.Sprintf("a controller does not send %s", h.CH.Type)})
	}
	return nil
}

// terminate sends an H2CTermReq for a protocol error and returns the error; the
// connection is closed when the queue pair is freed.
func (q *hostQueue) terminate(pe *ProtocolError) error {
	q.w.TermReq(true, pe.FES, pe.FEI, q.r.RawHeader())
	_ = q.w.Flush()
	return fmt.Errorf("nvmetcp: queue %d: %w", q.qid, pe)
}

func (q *hostQueue) fail(err error) error {
	if q.failed == nil {
		q.failed = err
		_ = q.nc.Close() // no further bytes of a stream out of step
	}
	return q.failed
}

// Close implements nvme.FabricQueue.
func (q *hostQueue) Close() error {
	if q.closed {
		return nil
	}
	q.closed = true
	if q.failed == nil {
		q.failed = fmt.Errorf("nvmetcp: queue %d is closed", q.qid)
	}
	return q.nc.Close()
}
