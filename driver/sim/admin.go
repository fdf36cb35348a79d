package sim

import (
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Capabilities reported in Identify Controller.
const (
	abortLimit      = 4 // ACL is this minus one
	asyncEventMax   = 4 // AERL is this minus one
	temperatureK    = 310
	simControllerID = 1
)

func generic(sc uint8) spec.Status  { return spec.MakeStatus(spec.SCTGeneric, sc) }
func specific(sc uint8) spec.Status { return spec.MakeStatus(spec.SCTCommandSpecific, sc) }

func (c *Controller) buildIdentifyController() []byte {
	var id spec.IdentifyController
	id.VID = VendorID
	id.SSVID = VendorID
	spec.SetString(id.SN[:], SerialNumber)
	spec.SetString(id.MN[:], ModelNumber)
	spec.SetString(id.FR[:], Firmware)
	id.MDTS = c.cfg.MDTS
	id.CNTLID = simControllerID
	id.VER = uint32(spec.MakeVS(1, 4, 0))
	id.OACS = 0
	if c.cfg.ShadowDoorbell {
		id.OACS |= spec.OACSDoorbellBufferConfig
	}
	id.ACL = abortLimit - 1
	id.AERL = asyncEventMax - 1
	id.LPA = 0
	id.SQES = spec.SQESizeLog<<4 | spec.SQESizeLog
	id.CQES = spec.CQESizeLog<<4 | spec.CQESizeLog
	id.NN = uint32(c.cfg.Namespaces)
	id.RTD3E = c.cfg.RTD3E
	id.ONCS = spec.ONCSDatasetManagement | spec.ONCSWriteZeroes
	id.VWC = 0
	id.SGLS = 0
	for i, v := range commandRetryDelays {
		id.SetCRDT(i+1, v)
	}
	spec.SetString(id.SUBNQN[:], "nqn.2024-01.io.nvmeperf:sim")
	out := make([]byte, spec.IdentifyDataSize)
	copy(out, unsafe.Slice((*byte)(unsafe.Pointer(&id)), spec.IdentifyDataSize))
	return out
}

func (c *Controller) fillIdentifyNamespace(ns *namespace, dst []byte) {
	var id spec.IdentifyNamespace
	id.NSZE = ns.nlbas
	id.NCAP = ns.nlbas
	if ns.data != nil {
		id.NUSE = uint64(ns.stored.Load()) * storePage >> ns.lbaShift
	} else {
		id.NUSE = ns.nlbas
	}
	id.NLBAF = 0
	id.FLBAS = 0
	if ns.data != nil {
		id.DLFEAT = 1 // deallocated blocks read as zeroes
	}
	id.LBAF[0] = spec.MakeLBAFormat(0, uint8(ns.lbaShift), 0)
	ns.identifyFormat(&id)
	binary.LittleEndian.PutUint32(id.EUI64[:4], VendorID)
	binary.LittleEndian.PutUint32(id.EUI64[4:], ns.id)
	copy(dst, unsafe.Slice((*byte)(unsafe.Pointer(&id)), spec.IdentifyDataSize))
}

// admin executes one admin command and completes it (except held AERs).
func (c *Controller) admin(sq *submissionQueue, cmd *spec.Command) {
	c.stats.adminCommands.Add(1)
	var st spec.Status
	var dw0 uint32
	switch spec.AdminOpcode(cmd.Opcode()) {
	case spec.AdminIdentify:
		st = c.identify(cmd)
	case spec.AdminCreateIOCQ:
		st = c.createCQ(cmd)
	case spec.AdminCreateIOSQ:
		st = c.createSQ(cmd)
	case spec.AdminDeleteIOSQ:
		st = c.deleteSQ(cmd)
	case spec.AdminDeleteIOCQ:
		st = c.deleteCQ(cmd)
	case spec.AdminSetFeatures:
		st, dw0 = c.setFeatures(cmd)
	case spec.AdminGetFeatures:
		st, dw0 = c.getFeatures(cmd)
	case spec.AdminGetLogPage:
		st = c.getLogPage(cmd)
	case spec.AdminAbort:
		dw0 = c.abort(cmd) // recovery.go
	case spec.AdminKeepAlive:
	case spec.AdminDoorbellBufferCfg:
		st = c.doorbellBufferConfig(cmd) // shadowdb.go
	case spec.AdminAsyncEventRequest:
		if st = c.holdAER(sq, cmd); st == spec.StatusSuccess {
			return // held until an event (recovery.go); a reset drops it
		}
	default:
		st = generic(spec.SCInvalidOpcode)
	}
	c.complete(sq, cmd, st, dw0, 0)
}

// sendData copies src to the host through the command's PRPs.
func (c *Controller) sendData(cmd *spec.Command, src []byte) spec.Status {
	if st := c.walkPRP(cmd, uint64(len(src))); st != spec.StatusSuccess {
		return st
	}
	for _, seg := range c.segs {
		src = src[copy(seg, src):]
	}
	return spec.StatusSuccess
}

func (c *Controller) identify(cmd *spec.Command) spec.Status {
	buf := c.scratch
	clear(buf)
	switch uint8(cmd.CDW10) {
	case spec.CNSController:
		copy(buf, c.identCtrl)
	case spec.CNSNamespace:
		if cmd.NSID == 0 || cmd.NSID > uint32(len(c.namespaces)) {
			return generic(spec.SCInvalidNamespaceOrFormat)
		}
		c.fillIdentifyNamespace(c.namespaces[cmd.NSID-1], buf)
	case spec.CNSActiveNamespaces:
		if cmd.NSID >= 0xFFFFFFFE {
			return generic(spec.SCInvalidNamespaceOrFormat)
		}
		i := 0
		for _, ns := range c.namespaces {
			if ns.id > cmd.NSID {
				binary.LittleEndian.PutUint32(buf[4*i:], ns.id)
				i++
			}
		}
	default:
		return generic(spec.SCInvalidField)
	}
	return c.sendData(cmd, buf)
}

// Create/Delete I/O queue fields: CDW10 QID 15:0 and QSIZE 31:16 (0's based); Create
// I/O SQ CDW11 CQID 31:16.
func queueID(cmd *spec.Command) uint16   { return uint16(cmd.CDW10) }
func queueSize(cmd *spec.Command) uint32 { return cmd.CDW10>>16 + 1 }

func (c *Controller) checkNewQueue(cmd *spec.Command, exists bool) spec.Status {
	qid := queueID(cmd)
	switch {
	case qid == 0 || qid > c.maxQID || exists:
		return specific(spec.SCInvalidQueueIdentifier)
	case queueSize(cmd) < 2 || queueSize(cmd) > uint32(c.cfg.MQES)+1:
		return specific(spec.SCInvalidQueueSize)
	case cmd.CDW11&spec.QueuePhysicallyContiguous == 0:
		return generic(spec.SCInvalidField) // CAP.CQR is set: queues must be contiguous
	case cmd.PRP1%c.pageSize != 0:
		c.violation(ViolationQueueSetup, "queue %d base %#x not aligned to the %d-byte memory page", qid, cmd.PRP1, c.pageSize)
		return generic(spec.SCInvalidField)
	}
	return spec.StatusSuccess
}

func (c *Controller) createCQ(cmd *spec.Command) spec.Status {
	qid := queueID(cmd)
	exists := int(qid) < len(c.cqs) && c.cqs[qid] != nil
	if st := c.checkNewQueue(cmd, exists); st != spec.StatusSuccess {
		return st
	}
	if _, st := c.newCQStatus(qid, queueSize(cmd), cmd.PRP1); st != spec.StatusSuccess {
		return st // base address outside host memory, or a misuse of the CMB
	}
	return spec.StatusSuccess
}

func (c *Controller) createSQ(cmd *spec.Command) spec.Status {
	qid := queueID(cmd)
	exists := int(qid) < len(c.sqs) && c.sqs[qid] != nil
	if st := c.checkNewQueue(cmd, exists); st != spec.StatusSuccess {
		return st
	}
	cqid := uint16(cmd.CDW11 >> 16)
	if cqid == 0 || int(cqid) >= len(c.cqs) || c.cqs[cqid] == nil {
		return specific(spec.SCCompletionQueueInvalid)
	}
	if _, st := c.newSQStatus(qid, queueSize(cmd), cmd.PRP1, c.cqs[cqid]); st != spec.StatusSuccess {
		return st
	}
	return spec.StatusSuccess
}

func (c *Controller) deleteSQ(cmd *spec.Command) spec.Status {
	qid := queueID(cmd)
	if qid == 0 || int(qid) >= len(c.sqs) || c.sqs[qid] == nil {
		return specific(spec.SCInvalidQueueIdentifier)
	}
	sq := c.sqs[qid]
	// Commands still timed complete now, aborted, before the queue goes away.
	c.timers.removeSQ(sq, func(p pending) {
		c.post(sq, p.cid, generic(spec.SCAbortedSQDeletion), 0)
	})
	c.releaseHeld(sq, true)
	sq.cq.sqs--
	sq.pin.Add(-1)
	c.sqs[qid] = nil
	for i, q := range c.active {
		if q == sq {
			c.active = append(c.active[:i], c.active[i+1:]...)
			break
		}
	}
	return spec.StatusSuccess
}

func (c *Controller) deleteCQ(cmd *spec.Command) spec.Status {
	qid := queueID(cmd)
	if qid == 0 || int(qid) >= len(c.cqs) || c.cqs[qid] == nil {
		return specific(spec.SCInvalidQueueIdentifier)
	}
	cq := c.cqs[qid]
	if cq.sqs > 0 {
		return specific(spec.SCInvalidQueueDeletion)
	}
	cq.pin.Add(-1)
	c.cqs[qid] = nil
	return spec.StatusSuccess
}

func (c *Controller) setFeatures(cmd *spec.Command) (spec.Status, uint32) {
	fid := uint8(cmd.CDW10)
	switch fid {
	case spec.FeatureNumberOfQueues:
		nsq, ncq := spec.DecodeNumberOfQueues(cmd.CDW11)
		if nsq == 0x10000 || ncq == 0x10000 {
			return generic(spec.SCInvalidField), 0
		}
		n := min(max(nsq, ncq), uint32(c.cfg.IOQueues))
		c.maxQID = uint16(n)
		v := spec.NumberOfQueues(uint16(n), uint16(n))
		c.features[fid] = v
		return spec.StatusSuccess, v
	case spec.FeatureVolatileWriteCache:
		if cmd.CDW11&1 != 0 {
			return generic(spec.SCInvalidField), 0 // VWC: no volatile write cache
		}
		return spec.StatusSuccess, 0
	case spec.FeatureArbitration, spec.FeaturePowerManagement, spec.FeatureTemperature, spec.FeatureErrorRecovery:
		c.features[fid] = cmd.CDW11
		return spec.StatusSuccess, 0
	}
	return generic(spec.SCInvalidField), 0
}

func (c *Controller) getFeatures(cmd *spec.Command) (spec.Status, uint32) {
	fid := uint8(cmd.CDW10)
	switch fid {
	case spec.FeatureNumberOfQueues, spec.FeatureVolatileWriteCache, spec.FeatureArbitration,
		spec.FeaturePowerManagement, spec.FeatureTemperature, spec.FeatureErrorRecovery:
		return spec.StatusSuccess, c.features[fid]
	}
	return generic(spec.SCInvalidField), 0
}

// getLogPage serves SMART / Health and an empty Error Information log. Fields: CDW10 LID
// 7:0, NUMDL 31:16; CDW11 NUMDU 15:0; CDW12/13 byte offset.
func (c *Controller) getLogPage(cmd *spec.Command) spec.Status {
	numd := uint64(cmd.CDW10>>16|(cmd.CDW11&0xFFFF)<<16) + 1
	length := numd * 4
	offset := uint64(cmd.CDW12) | uint64(cmd.CDW13)<<32
	if offset%4 != 0 || offset >= spec.IdentifyDataSize || length > spec.IdentifyDataSize-offset {
		return generic(spec.SCInvalidField)
	}
	buf := c.scratch
	clear(buf)
	switch uint8(cmd.CDW10) {
	case spec.LogSMARTHealth:
		c.fillSMART(buf)
	case spec.LogErrorInformation:
		c.fillErrorLog(buf) // injected failures with Faults.SetErrorLog; else empty
	case LogChangedNamespaces:
		// An empty list: RaiseAsyncEvent names no namespace.
	default:
		return specific(spec.SCInvalidLogPage)
	}
	return c.sendData(cmd, buf[offset:offset+length])
}

func (c *Controller) fillSMART(dst []byte) {
	var log spec.SMARTLog
	log.CriticalWarning = uint8(c.rec.criticalWarning.Load()) // RaiseAsyncEvent
	spec.SetCounter128(&log.ErrorLogEntries, c.rec.errorCount.Load())
	spec.SetCounter128(&log.MediaErrors, c.rec.mediaErrors.Load())
	binary.LittleEndian.PutUint16(log.Temperature[:], temperatureK)
	log.AvailableSpare = 100
	log.AvailableSpareThresh = 10
	// Data units are thousands of 512-byte units, rounded up.
	units := func(b uint64) uint64 { return (b/512 + 999) / 1000 }
	spec.SetCounter128(&log.DataUnitsRead, units(c.stats.readBytes.Load()))
	spec.SetCounter128(&log.DataUnitsWritten, units(c.stats.writeBytes.Load()))
	spec.SetCounter128(&log.HostReadCommands, c.stats.reads.Load())
	spec.SetCounter128(&log.HostWriteCommands, c.stats.writes.Load())
	spec.SetCounter128(&log.PowerCycles, 1)
	spec.SetCounter128(&log.PowerOnHours, uint64(time.Since(c.clockBase)/time.Hour))
	log.TempSensors[0] = temperatureK
	copy(dst, unsafe.Slice((*byte)(unsafe.Pointer(&log)), spec.SMARTLogSize))
}
