package serve

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"strconv"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvmetcp"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Controller properties (NVMe-oF 1.1, section 3.4: the PCIe register map, by offset).
const (
	capTimeout   = 15 // CAP.TO in 500 ms units: 7.5 s
	maxAER       = 4  // AERL+1
	servedVS     = 0x00010300
	katoGranular = 1 // KAS: 100 ms units
)

func (c *conn) capValue() spec.CAP {
	return spec.MakeCAP(uint16(c.s.cfg.QueueSize-1), true, capTimeout, 0, 1, 0, 0)
}

// runAdmin serves an admin queue (of an NVM or discovery controller).
func (c *conn) runAdmin() error {
	out := make([]byte, maxAdminData)
	for {
		if kato := c.ctrl.kato; kato > 0 {
			// Keep Alive (NVMe Base 2.0, section 3.9): a host silent for longer than KATO
			// loses its controller. Any admin command counts as traffic.
			_ = c.nc.SetReadDeadline(time.Now().Add(time.Duration(kato)*time.Millisecond + keepAliveGrace))
		}
		h, err := c.r.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("serve: controller %d: keep alive timeout (%d ms) expired", c.ctrl.id, c.ctrl.kato)
			}
			return err
		}
		switch h.CH.Type {
		case nvmetcp.TypeCapsuleCmd:
		case nvmetcp.TypeH2CTermReq:
			return errClosedByHost
		default:
			return &nvmetcp.ProtocolError{FES: nvmetcp.FESPDUSequenceError,
				Msg: fmt.Sprintf("%s on an admin queue", h.CH.Type)}
		}
		sqe := h.CapsuleCmd.SQE
		data, status, err := c.readCapsuleData(h, c.adminBuf)
		if err != nil {
			return err
		}
		c.wmu.Lock() // completeAER reads SQHD
		c.advanceSQHD()
		c.wmu.Unlock()
		cpl := spec.Completion{CID: sqe.CID()}
		var reply []byte
		hold, disconnect := false, false
		if status == 0 {
			r := c.admin(&sqe, data, out)
			reply, hold, disconnect, status = r.data, r.hold, r.disconnect, r.status
			cpl.DW0, cpl.DW1 = r.dw0, r.dw1
		}
		if hold {
			continue
		}
		cpl.Status = uint16(status) << 1
		c.wmu.Lock()
		if len(reply) > 0 && status == 0 {
			c.w.C2HData(cpl.CID, 0, reply, true, c.sqflowOff)
			if !c.sqflowOff {
				c.respond(&cpl)
			}
		} else {
			c.respond(&cpl)
		}
		err = c.w.Flush()
		c.wmu.Unlock()
		if err != nil {
			return err
		}
		if disconnect {
			return errClosedByHost
		}
	}
}

type adminResult struct {
	data       []byte
	dw0, dw1   uint32
	status     spec.Status
	hold       bool // no completion now (Asynchronous Event Request)
	disconnect bool
}

func statusOf(sct spec.StatusCodeType, sc uint8) adminResult {
	return adminResult{status: spec.MakeStatus(sct, sc).WithDNR()}
}

var invalidField = statusOf(spec.SCTGeneric, spec.SCInvalidField)

// replyBuf is the host's data buffer for a controller-to-host command: the length its
// SGL names, zeroed, at most maxAdminData.
func replyBuf(sqe *spec.Command, out []byte) ([]byte, bool) {
	d, err := nvmetcp.CommandData(sqe)
	if err != nil || d.InCapsule || d.Length == 0 || int(d.Length) > len(out) {
		return nil, false
	}
	b := out[:d.Length]
	clear(b)
	return b, true
}

// admin executes one admin (or fabrics) command.
func (c *conn) admin(sqe *spec.Command, data []byte, out []byte) adminResult {
	ctrl := c.ctrl
	if sqe.Opcode() == spec.OpcodeFabrics {
		return c.fabrics(sqe)
	}
	ctrl.mu.Lock()
	ready := ctrl.csts.RDY()
	ctrl.mu.Unlock()
	if !ready {
		return statusOf(spec.SCTGeneric, spec.SCCommandSequenceError)
	}
	switch spec.AdminOpcode(sqe.Opcode()) {
	case spec.AdminKeepAlive:
		return adminResult{}
	case spec.AdminAsyncEventRequest:
		// A discovery controller holds them too (hosts send them), and never completes
		// one: RaiseAsyncEvent posts to NVM controllers only.
		return c.takeAER(sqe) // aer.go
	case spec.AdminIdentify:
		buf, ok := replyBuf(sqe, out)
		if !ok || len(buf) < spec.IdentifyDataSize {
			return statusOf(spec.SCTGeneric, spec.SCDataSGLLengthInvalid)
		}
		buf = buf[:spec.IdentifyDataSize]
		return c.identify(sqe, buf)
	case spec.AdminGetLogPage:
		buf, ok := replyBuf(sqe, out)
		if !ok {
			return statusOf(spec.SCTGeneric, spec.SCDataSGLLengthInvalid)
		}
		return c.getLogPage(sqe, buf)
	case spec.AdminSetFeatures:
		return c.setFeatures(sqe)
	case spec.AdminGetFeatures:
		return c.getFeatures(sqe)
	case spec.AdminAbort:
		return adminResult{dw0: 1} // bit 0: the command was not aborted
	}
	return statusOf(spec.SCTGeneric, spec.SCInvalidOpcode)
}

// fabrics executes Property Get/Set and Disconnect (Connect is only valid first).
func (c *conn) fabrics(sqe *spec.Command) adminResult {
	ctrl := c.ctrl
	switch sqe.FabricsType() {
	case spec.FabricsPropertyGet:
		if c.qid != 0 {
			return invalidField
		}
		pg := spec.PropertyGetFromCommand(sqe)
		ctrl.mu.Lock()
		defer ctrl.mu.Unlock()
		var v uint64
		switch pg.OFST {
		case spec.RegCAP:
			v = uint64(c.capValue())
		case spec.RegVS:
			v = servedVS
		case spec.RegCC:
			v = uint64(ctrl.cc)
		case spec.RegCSTS:
			v = uint64(ctrl.csts)
		default:
			return invalidField
		}
		if pg.ATTRIB&7 == spec.PropertySize4 {
			v &= 0xFFFFFFFF
		}
		return adminResult{dw0: uint32(v), dw1: uint32(v >> 32)}
	case spec.FabricsPropertySet:
		if c.qid != 0 {
			return invalidField
		}
		ps := spec.PropertySetFromCommand(sqe)
		if ps.OFST != spec.RegCC {
			return invalidField
		}
		c.setCC(spec.CC(uint32(ps.VALUE)))
		return adminResult{}
	case spec.FabricsDisconnect:
		return adminResult{disconnect: true}
	case spec.FabricsConnect:
		return statusOf(spec.SCTGeneric, spec.SCCommandSequenceError)
	}
	return statusOf(spec.SCTGeneric, spec.SCInvalidOpcode)
}

// setCC applies a CC write: enable sets CSTS.RDY (the controller has nothing to wait
// for), disable clears it and drops the I/O queues (a controller reset), a shutdown
// notification completes at once.
func (c *conn) setCC(v spec.CC) {
	ctrl := c.ctrl
	ctrl.mu.Lock()
	defer ctrl.mu.Unlock()
	old := ctrl.cc
	ctrl.cc = v
	switch {
	case v.EN() && !old.EN():
		if v.IOSQES() != spec.SQESizeLog || v.IOCQES() != spec.CQESizeLog || v.CSS() != 0 || v.MPS() != 0 {
			ctrl.csts |= spec.CSTSFatal
		} else {
			ctrl.csts = ctrl.csts&^spec.CSTSFatal | spec.CSTSReady
		}
	case !v.EN() && old.EN():
		ctrl.csts = 0
		for qid, ioc := range ctrl.ioConns {
			ioc.nc.Close()
			delete(ctrl.ioConns, qid)
		}
		ctrl.nrIOQ = 0
		ctrl.aers = nil // a reset ends the held requests with the rest of the queue
	}
	if v.SHN() != spec.CCShutdownNone {
		ctrl.csts = ctrl.csts.WithSHST(spec.ShutdownStatusComplete)
	} else if old.SHN() != spec.CCShutdownNone {
		ctrl.csts = ctrl.csts.WithSHST(spec.ShutdownStatusNormal)
	}
}

func putString(dst []byte, s string) { spec.SetString(dst, s) }

// identify fills buf (4096 bytes) for Identify (NVMe Base 2.0, section 5.17). Fields are
// written at their spec offsets in little-endian order.
func (c *conn) identify(sqe *spec.Command, buf []byte) adminResult {
	le := binary.LittleEndian
	cns := uint8(sqe.CDW10)
	csi := uint8(sqe.CDW11 >> 24)
	ctrl := c.ctrl
	nn := uint32(len(c.s.cfg.Namespaces))
	if ctrl.discovery && cns != spec.CNSController {
		return invalidField
	}
	switch cns {
	case spec.CNSController:
		putString(buf[4:24], c.s.cfg.Serial)
		putString(buf[24:64], c.s.cfg.Model)
		putString(buf[64:72], "nvmeperf")
		buf[72] = 6 // RAB
		if !ctrl.discovery {
			buf[76] = 1 << 1 // CMIC: the subsystem may have several controllers (one per host association)
		}
		if !ctrl.discovery {
			buf[77] = c.s.mdtsExp // MDTS: 2^n pages of 4 KiB (CAP.MPSMIN 0)
		}
		le.PutUint16(buf[78:], ctrl.id)
		le.PutUint32(buf[80:], servedVS)
		buf[spec.IdentifyOffsetCNTRLTYPE] = spec.ControllerTypeIO
		if ctrl.discovery {
			buf[spec.IdentifyOffsetCNTRLTYPE] = spec.ControllerTypeDiscovery
		}
		buf[258] = 3          // ACL
		buf[259] = maxAER - 1 // AERL
		buf[260] = 1<<1 | 1   // FRMW: one slot, slot 1 read only
		buf[261] = 1 << 2     // LPA: extended data for Get Log Page (offsets)
		le.PutUint16(buf[spec.IdentifyOffsetKAS:], katoGranular)
		buf[512] = 0x66 // SQES
		buf[513] = 0x44 // CQES
		le.PutUint16(buf[514:], uint16(c.s.cfg.QueueSize))
		if !ctrl.discovery {
			le.PutUint32(buf[516:], nn)
		}
		// SGLS: SGLs supported (bit 0), the address of an offset-subtype data block is an
		// offset into the capsule (bit 20).
		le.PutUint32(buf[536:], 1|1<<20)
		sub := c.s.cfg.NQN
		if ctrl.discovery {
			sub = spec.DiscoveryNQN
		}
		copy(buf[768:1024], sub)
		le.PutUint32(buf[spec.IdentifyOffsetIOCCSZ:], uint32((spec.SQESize+c.s.cfg.InCapsuleData)/16))
		le.PutUint32(buf[spec.IdentifyOffsetIORCSZ:], spec.CQESize/16)
		le.PutUint16(buf[spec.IdentifyOffsetICDOFF:], 0)
		buf[spec.IdentifyOffsetFCATT] = 0 // dynamic controller model
		buf[spec.IdentifyOffsetMSDBD] = 1
		le.PutUint16(buf[spec.IdentifyOffsetOFCS:], 1) // Disconnect supported
		return adminResult{data: buf}
	case spec.CNSNamespace:
		if sqe.NSID == 0 || sqe.NSID > nn {
			return statusOf(spec.SCTGeneric, spec.SCInvalidNamespaceOrFormat)
		}
		i := sqe.NSID - 1
		blocks := c.s.blocks[i]
		le.PutUint64(buf[0:], blocks)  // NSZE
		le.PutUint64(buf[8:], blocks)  // NCAP
		le.PutUint64(buf[16:], blocks) // NUSE
		buf[25] = 0                    // NLBAF: one format
		buf[26] = 0                    // FLBAS: format 0, no metadata
		buf[30] = 1                    // NMIC: shared by every controller of the subsystem
		copy(buf[104:120], c.nguid(sqe.NSID))
		le.PutUint32(buf[128:], uint32(spec.MakeLBAFormat(0, uint8(log2(c.s.lbaSize[i])), 0)))
		return adminResult{data: buf}
	case spec.CNSActiveNamespaces:
		n := 0
		for id := uint32(1); id <= nn && n < 1024; id++ {
			if id > sqe.NSID {
				le.PutUint32(buf[4*n:], id)
				n++
			}
		}
		return adminResult{data: buf}
	case 0x03: // Namespace Identification Descriptor list: one NGUID descriptor
		if sqe.NSID == 0 || sqe.NSID > nn {
			return statusOf(spec.SCTGeneric, spec.SCInvalidNamespaceOrFormat)
		}
		buf[0], buf[1] = 2, 16 // NIDT NGUID, NIDL
		copy(buf[4:20], c.nguid(sqe.NSID))
		return adminResult{data: buf}
	case 0x05, 0x06: // I/O command set specific namespace / controller: NVM, all zero
		if csi != 0 {
			return invalidField
		}
		if cns == 0x05 && (sqe.NSID == 0 || sqe.NSID > nn) {
			return statusOf(spec.SCTGeneric, spec.SCInvalidNamespaceOrFormat)
		}
		return adminResult{data: buf}
	}
	return invalidField
}

// nguid is a namespace's globally unique identifier: stable for an NQN and NSID, so
// every controller of the subsystem reports the same one.
func (c *conn) nguid(nsid uint32) []byte {
	var g [16]byte
	binary.BigEndian.PutUint32(g[0:], crc32.ChecksumIEEE([]byte(c.s.cfg.NQN)))
	binary.BigEndian.PutUint32(g[4:], crc32.Checksum([]byte(c.s.cfg.NQN), crc32.MakeTable(crc32.Koopman)))
	copy(g[8:12], "nvpf")
	binary.BigEndian.PutUint32(g[12:], nsid)
	return g[:]
}

func log2(v uint32) int {
	n := 0
	for v > 1 {
		v >>= 1
		n++
	}
	return n
}

// getLogPage serves the discovery log page on a discovery controller; on an NVM
// controller the subsystem's SMART / Health page (health.go), an empty error page and
// the firmware slot page.
func (c *conn) getLogPage(sqe *spec.Command, buf []byte) adminResult {
	lid := uint8(sqe.CDW10)
	offset := uint64(sqe.CDW12) | uint64(sqe.CDW13)<<32
	if offset%4 != 0 {
		return invalidField
	}
	if c.ctrl.discovery {
		if lid != spec.LogDiscovery {
			return statusOf(spec.SCTCommandSpecific, spec.SCInvalidLogPage)
		}
		page := c.discoveryLog()
		if offset >= uint64(len(page)) {
			return invalidField
		}
		copy(buf, page[offset:])
		return adminResult{data: buf}
	}
	switch lid {
	case spec.LogSMARTHealth:
		// The page is the same for every NSID: counts are kept for the subsystem.
		var page [spec.SMARTLogSize]byte
		l := c.s.SMARTLog()
		l.Marshal(page[:])
		if offset < uint64(len(page)) {
			copy(buf, page[offset:])
		}
		return adminResult{data: buf}
	case spec.LogErrorInformation, spec.LogFirmwareSlot:
		if lid == spec.LogFirmwareSlot && offset == 0 && len(buf) >= 16 {
			buf[0] = 1 // AFI: slot 1 active
			putString(buf[8:16], "nvmeperf")
		}
		return adminResult{data: buf}
	}
	return statusOf(spec.SCTCommandSpecific, spec.SCInvalidLogPage)
}

// discoveryLog builds the discovery log page: one entry, the NVM subsystem, at the
// address this connection reached.
func (c *conn) discoveryLog() []byte {
	page := make([]byte, spec.DiscoveryLogHeaderSize+spec.DiscoveryLogEntrySize)
	hdr := spec.DiscoveryLogHeader{GENCTR: 1, NUMREC: 1}
	hdr.Marshal(page)
	e := spec.DiscoveryLogEntry{TRTYPE: spec.TransportTCP, ADRFAM: spec.AddressFamilyIPv4,
		SUBTYPE: spec.SubsystemTypeNVM, TREQ: 0, PORTID: 1, CNTLID: spec.ControllerIDDynamic, ASQSZ: 32}
	addr, port := "", ""
	if ta, ok := c.nc.LocalAddr().(*net.TCPAddr); ok {
		addr, port = ta.IP.String(), strconv.Itoa(ta.Port)
		if ta.IP.To4() == nil {
			e.ADRFAM = spec.AddressFamilyIPv6
		}
	}
	spec.SetString(e.TRSVCID[:], port)
	spec.SetString(e.TRADDR[:], addr)
	copy(e.SUBNQN[:255], c.s.cfg.NQN)
	e.Marshal(page[spec.DiscoveryLogHeaderSize:])
	return page
}

// Feature identifiers beyond spec's list.
const (
	featureAsyncEventConfig = 0x0B
	featureKeepAliveTimer   = 0x0F
)

func (c *conn) grantQueues(req uint32) uint32 {
	nsq, ncq := spec.DecodeNumberOfQueues(req)
	n := min(nsq, ncq, uint32(c.s.cfg.MaxIOQueues))
	return n
}

func (c *conn) setFeatures(sqe *spec.Command) adminResult {
	ctrl := c.ctrl
	ctrl.mu.Lock()
	defer ctrl.mu.Unlock()
	switch uint8(sqe.CDW10) {
	case spec.FeatureNumberOfQueues:
		if ctrl.discovery {
			return invalidField
		}
		if sqe.CDW11&0xFFFF == 0xFFFF || sqe.CDW11>>16 == 0xFFFF {
			return invalidField
		}
		n := c.grantQueues(sqe.CDW11)
		ctrl.nrIOQ = int(n)
		return adminResult{dw0: spec.NumberOfQueues(uint16(n), uint16(n))}
	case featureKeepAliveTimer:
		ctrl.kato = sqe.CDW11
		return adminResult{}
	case featureAsyncEventConfig:
		return adminResult{}
	}
	return invalidField
}

func (c *conn) getFeatures(sqe *spec.Command) adminResult {
	ctrl := c.ctrl
	ctrl.mu.Lock()
	defer ctrl.mu.Unlock()
	switch uint8(sqe.CDW10) {
	case spec.FeatureNumberOfQueues:
		if ctrl.discovery {
			return invalidField
		}
		n := ctrl.nrIOQ
		if n == 0 {
			n = c.s.cfg.MaxIOQueues
		}
		return adminResult{dw0: spec.NumberOfQueues(uint16(n), uint16(n))}
	case featureKeepAliveTimer:
		return adminResult{dw0: ctrl.kato}
	case featureAsyncEventConfig:
		return adminResult{}
	}
	return invalidField
}
