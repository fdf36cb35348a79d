package serve

import (
	"sync/atomic"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// The SMART / Health log counts the I/O of the whole NVM subsystem (every controller,
// every connection). The I/O path takes no lock for it and shares no written cache
// line: each I/O connection's executor counts in plain fields of its own and publishes
// them (atomic stores, once per batch of answers, before the batch is written) to an
// ioCounters only it writes; reading the log page sums the live connections' counters
// with what closed connections left (folded in under Server.mu).

// Values the log page reports that serve has nothing to measure for.
const (
	// servedTemperatureK is a constant, plausible composite temperature (40 °C): the
	// served namespaces have no sensor serve could read.
	servedTemperatureK = 313
	servedSpare        = 100 // percent: nothing wears out
	servedSpareThresh  = 10
	// bytesPerDataUnit: Data Units Read/Written count 512-byte units (in thousands).
	bytesPerDataUnit = 512
)

// ioTotals are I/O counts of successful Read and Write commands.
type ioTotals struct {
	readCmds, writeCmds   uint64
	readUnits, writeUnits uint64 // 512-byte units
}

func (t *ioTotals) add(o ioTotals) {
	t.readCmds += o.readCmds
	t.writeCmds += o.writeCmds
	t.readUnits += o.readUnits
	t.writeUnits += o.writeUnits
}

// ioCounters are one I/O connection's published totals: stored by its executor only,
// loaded by log page reads. The padding keeps another allocation's hot fields off its
// cache line.
type ioCounters struct {
	readCmds, writeCmds   atomic.Uint64
	readUnits, writeUnits atomic.Uint64
	_                     [64]byte
}

func (c *ioCounters) store(t *ioTotals) {
	c.readCmds.Store(t.readCmds)
	c.writeCmds.Store(t.writeCmds)
	c.readUnits.Store(t.readUnits)
	c.writeUnits.Store(t.writeUnits)
}

func (c *ioCounters) load() ioTotals {
	return ioTotals{readCmds: c.readCmds.Load(), writeCmds: c.writeCmds.Load(),
		readUnits: c.readUnits.Load(), writeUnits: c.writeUnits.Load()}
}

// registerIO adds an I/O connection's counters to the subsystem's.
func (s *Server) registerIO(c *ioCounters) {
	s.mu.Lock()
	s.liveIO[c] = struct{}{}
	s.mu.Unlock()
}

// foldIO moves a closing connection's final counts into the closed connections' total.
func (s *Server) foldIO(c *ioCounters) {
	s.mu.Lock()
	delete(s.liveIO, c)
	s.closedIO.add(c.load())
	s.mu.Unlock()
}

// ioTotals sums the subsystem's I/O counts.
func (s *Server) ioTotals() ioTotals {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.closedIO
	for c := range s.liveIO {
		t.add(c.load())
	}
	return t
}

// dataUnits converts 512-byte units to the log's thousands, rounded up (NVMe Base 2.0,
// figure 207: a value of 1 means 1 to 1000 units).
func dataUnits(units uint64) uint64 { return (units + 999) / 1000 }

// SMARTLog is the SMART / Health Information log page the subsystem's controllers
// serve: I/O counts over all connections, power on hours since New, and constant
// temperature and spare values.
func (s *Server) SMARTLog() spec.SMARTLog {
	t := s.ioTotals()
	var l spec.SMARTLog
	l.CriticalWarning = uint8(s.criticalWarning.Load())
	l.SetTemperature(servedTemperatureK)
	l.AvailableSpare, l.AvailableSpareThresh = servedSpare, servedSpareThresh
	spec.SetCounter128(&l.DataUnitsRead, dataUnits(t.readUnits))
	spec.SetCounter128(&l.DataUnitsWritten, dataUnits(t.writeUnits))
	spec.SetCounter128(&l.HostReadCommands, t.readCmds)
	spec.SetCounter128(&l.HostWriteCommands, t.writeCmds)
	spec.SetCounter128(&l.PowerCycles, 1) // serve's start is the one power-on
	spec.SetCounter128(&l.PowerOnHours, uint64(time.Since(s.started)/time.Hour))
	return l
}

// criticalWarningBit is the SMART critical warning bit a SMART / Health event sets.
func criticalWarningBit(info uint8) uint32 {
	switch info {
	case spec.AsyncInfoSpareBelowTh:
		return 1 << 0
	case spec.AsyncInfoTemperature:
		return 1 << 1
	case spec.AsyncInfoReliability:
		return 1 << 2
	}
	return 0
}
