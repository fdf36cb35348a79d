package serve

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvmetcp"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// conn is one NVMe/TCP connection: one queue pair.
type conn struct {
	s       *Server
	nc      net.Conn
	r       *nvmetcp.Reader
	w       *nvmetcp.Writer
	digests nvmetcp.Digests
	hpda    uint8

	ctrl      *controller
	qid       uint16
	sqsize    int  // entries (Connect SQSIZE + 1)
	sqflowOff bool // Connect CATTR: SQ flow control disabled, so C2HData may carry SUCCESS
	sqhd      uint16
	// wmu serializes the admin queue's writes with completeAER (aer.go), which answers
	// from another goroutine; I/O queues have a single writer and never take it.
	wmu sync.Mutex

	adminBuf []byte
	dataBuf  []byte
}

func newConn(s *Server, nc net.Conn) *conn {
	maxData := max(adminInCapsule, s.cfg.InCapsuleData, int(s.cfg.MaxH2CData))
	return &conn{s: s, nc: nc,
		r: nvmetcp.NewReader(nc, 64<<10, maxData),
		w: nvmetcp.NewWriter(nc, 64<<10),
	}
}

// errClosedByHost ends a connection quietly (H2CTermReq or a Disconnect).
var errClosedByHost = errors.New("serve: host closed the connection")

// run serves the connection until it ends.
func (c *conn) run() {
	defer c.nc.Close()
	err := c.setup()
	if err == nil {
		if c.qid == 0 {
			err = c.runAdmin()
		} else {
			err = c.runIO()
		}
	}
	// Whatever ended the connection, a controller it created or joined lets go of it.
	if c.ctrl != nil {
		if c.qid == 0 {
			c.s.dropController(c.ctrl)
		} else {
			c.ctrl.mu.Lock()
			if c.ctrl.ioConns[c.qid] == c {
				delete(c.ctrl.ioConns, c.qid)
			}
			c.ctrl.mu.Unlock()
		}
	}
	c.fail(err, c.r.RawHeader())
}

// fail ends the connection after err: a protocol error gets a C2HTermReq first.
func (c *conn) fail(err error, rawHeader []byte) {
	var pe *nvmetcp.ProtocolError
	if errors.As(err, &pe) {
		c.s.addCommands(0, true)
		c.wmu.Lock()
		defer c.wmu.Unlock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.w.TermReq(false, pe.FES, pe.FEI, rawHeader)
		_ = c.w.Flush()
	}
}

// setup runs connection initialization (ICReq/ICResp) and the Connect command.
func (c *conn) setup() error {
	// A host that connects and says nothing is not kept forever.
	_ = c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	h, err := c.r.Next()
	if err != nil {
		return err
	}
	if h.CH.Type != nvmetcp.TypeICReq {
		return &nvmetcp.ProtocolError{FES: nvmetcp.FESPDUSequenceError, Msg: fmt.Sprintf("first PDU is %s, not ICReq", h.CH.Type)}
	}
	c.digests = nvmetcp.DigestsFromBits(h.ICReq.DGST)
	c.hpda = h.ICReq.HPDA
	c.w.ICResp(c.s.cfg.CPDA, c.digests, c.s.cfg.MaxH2CData)
	if err := c.w.Flush(); err != nil {
		return err
	}
	c.r.SetDigests(c.digests)
	c.w.SetDigests(c.digests)
	c.w.SetDataAlignment(c.hpda)

	h, err = c.r.Next()
	if err != nil {
		return err
	}
	if h.CH.Type != nvmetcp.TypeCapsuleCmd {
		return &nvmetcp.ProtocolError{FES: nvmetcp.FESPDUSequenceError, Msg: fmt.Sprintf("%s before Connect", h.CH.Type)}
	}
	sqe := h.CapsuleCmd.SQE
	c.adminBuf = make([]byte, adminInCapsule)
	data, status, err := c.readCapsuleData(h, c.adminBuf)
	if err != nil {
		return err
	}
	cpl := spec.Completion{CID: sqe.CID()}
	if status == 0 {
		var dw0 uint32
		dw0, status = c.connect(&sqe, data)
		cpl.DW0 = dw0
	}
	cpl.Status = uint16(status) << 1
	c.respond(&cpl)
	if err := c.w.Flush(); err != nil {
		return err
	}
	if status != 0 {
		// A failed Connect leaves nothing to serve. Drain briefly so that closing with
		// unread input does not reset the connection before the host reads the answer.
		_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.Copy(io.Discard, io.LimitReader(c.nc, 1<<20))
		return fmt.Errorf("serve: Connect failed: %s", status)
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	return nil
}

// readCapsuleData reads a command capsule's in-capsule data into buf. A data problem
// the command can be failed for is a status; a stream or protocol failure an error.
func (c *conn) readCapsuleData(h *nvmetcp.Header, buf []byte) ([]byte, spec.Status, error) {
	sqe := &h.CapsuleCmd.SQE
	if h.DataLen > len(buf) {
		return nil, 0, &nvmetcp.ProtocolError{FES: nvmetcp.FESDataOutOfRange, FEI: 4,
			Msg: fmt.Sprintf("%d bytes of in-capsule data, at most %d", h.DataLen, len(buf))}
	}
	desc, derr := nvmetcp.CommandData(sqe)
	if h.DataLen == 0 {
		return nil, c.descStatus(derr), nil
	}
	data := buf[:h.DataLen]
	if err := c.r.ReadData(data); err != nil {
		var de *nvmetcp.DataDigestError
		if errors.As(err, &de) {
			return nil, spec.MakeStatus(spec.SCTGeneric, spec.SCTransientTransportError), nil
		}
		return nil, 0, err
	}
	if derr != nil {
		return nil, c.descStatus(derr), nil
	}
	if !desc.InCapsule || int(desc.Length) != h.DataLen {
		return nil, spec.MakeStatus(spec.SCTGeneric, spec.SCDataSGLLengthInvalid).WithDNR(), nil
	}
	return data, 0, nil
}

func (c *conn) descStatus(err error) spec.Status {
	if err != nil {
		return spec.MakeStatus(spec.SCTGeneric, spec.SCSGLTypeInvalid).WithDNR()
	}
	return 0
}

// respond queues a response capsule, with the queue's SQ head.
func (c *conn) respond(cpl *spec.Completion) {
	cpl.SQID = c.qid
	cpl.SQHD = c.sqhd
	c.w.CapsuleResp(cpl)
}

// advanceSQHD accounts one consumed submission queue entry.
func (c *conn) advanceSQHD() {
	c.sqhd++
	if c.sqsize > 0 && int(c.sqhd) >= c.sqsize {
		c.sqhd = 0
	}
}

func invalidParam(inData bool, offset uint16) (uint32, spec.Status) {
	return spec.ConnectInvalidParameter(inData, offset),
		spec.MakeStatus(spec.SCTCommandSpecific, spec.SCConnectInvalidParameters).WithDNR()
}

// connect handles the Connect command (NVMe-oF 1.1, section 3.3).
func (c *conn) connect(sqe *spec.Command, data []byte) (uint32, spec.Status) {
	if sqe.Opcode() != spec.OpcodeFabrics || sqe.FabricsType() != spec.FabricsConnect {
		return 0, spec.MakeStatus(spec.SCTGeneric, spec.SCCommandSequenceError).WithDNR()
	}
	cmd := spec.ConnectFromCommand(sqe)
	var cd spec.ConnectData
	if !cd.Unmarshal(data) {
		return 0, spec.MakeStatus(spec.SCTGeneric, spec.SCDataSGLLengthInvalid).WithDNR()
	}
	if cmd.RECFMT != 0 {
		return 0, spec.MakeStatus(spec.SCTCommandSpecific, spec.SCConnectIncompatibleFormat).WithDNR()
	}
	subnqn, hostnqn := cd.SubsystemNQN(), cd.HostNQNString()
	discovery := subnqn == spec.DiscoveryNQN
	if !discovery && subnqn != c.s.cfg.NQN {
		return invalidParam(true, 256)
	}
	if CheckNQN(hostnqn) != nil {
		return invalidParam(true, 512)
	}
	c.sqsize = int(cmd.SQSIZE) + 1
	c.sqflowOff = cmd.CATTR&spec.ConnectDisableSQFlowCtrl != 0
	c.qid = cmd.QID
	if cmd.QID == 0 {
		if cd.CNTLID != spec.ControllerIDDynamic {
			return invalidParam(true, 16)
		}
		if cmd.SQSIZE < 1 || c.sqsize > 1024 {
			return invalidParam(false, 44)
		}
		ctrl, err := c.s.newController(discovery, hostnqn, cd.HostID, cmd.KATO, c)
		if err != nil {
			return 0, spec.MakeStatus(spec.SCTCommandSpecific, spec.SCConnectControllerBusy)
		}
		c.ctrl = ctrl
		return uint32(ctrl.id), 0
	}
	ctrl := c.s.lookupController(cd.CNTLID)
	if ctrl == nil || ctrl.discovery || discovery {
		return invalidParam(true, 16)
	}
	if ctrl.hostNQN != hostnqn || ctrl.hostID != cd.HostID {
		return invalidParam(true, 512)
	}
	if cmd.SQSIZE < 1 || c.sqsize > c.s.cfg.QueueSize {
		return invalidParam(false, 44)
	}
	ctrl.mu.Lock()
	defer ctrl.mu.Unlock()
	if ctrl.dropped {
		return invalidParam(true, 16)
	}
	if !ctrl.csts.RDY() {
		return 0, spec.MakeStatus(spec.SCTGeneric, spec.SCCommandSequenceError).WithDNR()
	}
	if int(cmd.QID) > ctrl.nrIOQ {
		return invalidParam(false, 42)
	}
	if _, dup := ctrl.ioConns[cmd.QID]; dup {
		return invalidParam(false, 42)
	}
	ctrl.ioConns[cmd.QID] = c
	c.ctrl = ctrl
	return uint32(ctrl.id), 0
}
