package nvme

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Asynchronous events (Options.Recovery.AsyncEvents): the controller keeps AERL+1
// Asynchronous Event Requests outstanding on the admin queue; a completion names an
// event and the log page that tells more. The admin queue is polled only while an
// admin command waits, so a goroutine polls it every aerPollInterval, reads the log
// page each event names (which clears the event: RAE is 0), records the event and
// sends a new request.

const aerPollInterval = 100 * time.Millisecond

// Asynchronous event types (Completion DW0 bits 2:0; NVMe Base 2.0, figure 146).
const (
	asyncTypeError  = 0
	asyncTypeSMART  = 1
	asyncTypeNotice = 2
	asyncTypeIO     = 6
	asyncTypeVendor = 7
)

// aerState belongs to the admin queue: its counters are used under adminMu (callbacks
// run from admin Polls, which hold it).
type aerState struct {
	want        int // requests to keep outstanding
	outstanding int
	pending     []uint32 // completions' DW0 not yet handled
	stop, done  chan struct{}
	// errorLog is set when an I/O completion had the More bit: the poller then reads
	// the Error Information log.
	errorLog       atomic.Bool
	pollMu         sync.Mutex // one pollAsyncEvents at a time (poller, PollEvents)
	lastErrorCount uint64     // newest error log entry recorded, under pollMu
}

// PollEvents handles asynchronous events and error log reads now instead of at the
// poller's next tick, so that a report made at the end of a run sees them all.
func (c *Controller) PollEvents() {
	if c.aer.stop != nil {
		c.pollAsyncEvents()
	}
}

// errorLogEntries is how many Error Information log entries the poller reads.
const errorLogEntries = 4

// wantErrorLog asks the poller to read the Error Information log (a completion set
// More). Cheap and safe from any goroutine.
func (c *Controller) wantErrorLog() { c.aer.errorLog.Store(true) }

type aerCallback struct{ c *Controller }

func (cb aerCallback) CommandDone(_ any, cpl *spec.Completion) {
	a := &cb.c.aer
	a.outstanding--
	if cpl.StatusField().OK() {
		a.pending = append(a.pending, cpl.DW0)
	}
	// An error status (the request was dropped by a reset or refused) is not resent
	// from here: the poller tops the requests up.
}

// startAsyncEvents starts the poller when the options ask for asynchronous events.
func (c *Controller) startAsyncEvents() {
	if !c.opts.Recovery.AsyncEvents || c.admin == nil {
		return
	}
	c.aer.want = min(int(c.ident.AERL)+1, c.admin.Capacity()/2)
	c.aer.stop, c.aer.done = make(chan struct{}), make(chan struct{})
	go c.aerLoop()
}

// stopAsyncEvents stops the poller (Detach, before the admin queue goes).
func (c *Controller) stopAsyncEvents() {
	if c.aer.stop == nil {
		return
	}
	close(c.aer.stop)
	<-c.aer.done
	c.aer.stop = nil
}

func (c *Controller) aerLoop() {
	defer close(c.aer.done)
	t := time.NewTicker(aerPollInterval)
	defer t.Stop()
	c.pollAsyncEvents()
	for {
		select {
		case <-c.aer.stop:
			return
		case <-t.C:
			c.pollAsyncEvents()
		}
	}
}

// pollAsyncEvents reaps AER completions, handles the events and tops the requests up.
func (c *Controller) pollAsyncEvents() {
	c.aer.pollMu.Lock()
	defer c.aer.pollMu.Unlock()
	if c.rec.resetting.Load() || c.Err() != nil {
		return
	}
	c.adminMu.Lock()
	if _, err := c.admin.Poll(); err != nil {
		c.markFailed(err)
		c.adminMu.Unlock()
		return
	}
	events := c.aer.pending
	c.aer.pending = nil
	c.adminMu.Unlock()
	for _, dw0 := range events {
		c.handleAsyncEvent(dw0)
	}
	if c.aer.errorLog.Swap(false) {
		c.recordErrorLog()
	}
	c.adminMu.Lock()
	defer c.adminMu.Unlock()
	cmd := spec.Command{}
	cmd.SetOpcodeCID(uint8(spec.AdminAsyncEventRequest), 0)
	for c.aer.outstanding < c.aer.want && c.Err() == nil {
		if err := c.admin.Submit(&cmd, bus.Buffer{}, aerCallback{c}, nil); err != nil {
			break
		}
		c.aer.outstanding++
	}
	if _, err := c.admin.Poll(); err != nil { // rings the doorbell
		c.markFailed(err)
	}
}

// handleAsyncEvent reads the log page an event names and records the event.
func (c *Controller) handleAsyncEvent(dw0 uint32) {
	typ, info, lid := dw0&7, uint8(dw0>>8), uint8(dw0>>16)
	detail := fmt.Sprintf("%s (information %#02x), log page %#02x", asyncTypeName(typ), info, lid)
	switch lid {
	case spec.LogSMARTHealth:
		if log, err := c.SMART(); err != nil {
			detail += ": reading it failed: " + err.Error()
		} else {
			detail += fmt.Sprintf(": critical warning %#02x, temperature %d K, available spare %d%%, media errors %d",
				log.CriticalWarning, uint16(log.Temperature[0])|uint16(log.Temperature[1])<<8, log.AvailableSpare,
				spec.Counter128(log.MediaErrors))
		}
	default:
		// Error information, changed namespace list and the rest: reading the page
		// clears the event; its contents are not interpreted here.
		if err := c.readLogPage(lid, 512); err != nil {
			detail += ": reading it failed: " + err.Error()
		}
	}
	c.rec.note(Event{Kind: EventAsyncEvent, Detail: detail})
}

func asyncTypeName(typ uint32) string {
	switch typ {
	case asyncTypeError:
		return "error status"
	case asyncTypeSMART:
		return "SMART / health status"
	case asyncTypeNotice:
		return "notice"
	case asyncTypeIO:
		return "I/O command specific status"
	case asyncTypeVendor:
		return "vendor specific"
	}
	return fmt.Sprintf("type %d", typ)
}

// readLogPage reads size bytes of log page lid (controller-wide) into the scratch page.
func (c *Controller) readLogPage(lid uint8, size int) error {
	numd := uint32(size/4 - 1)
	cmd := spec.Command{NSID: 0xFFFFFFFF, CDW10: uint32(lid) | (numd&0xFFFF)<<16, CDW11: numd >> 16}
	cmd.SetOpcodeCID(uint8(spec.AdminGetLogPage), 0)
	c.adminMu.Lock()
	defer c.adminMu.Unlock()
	clear(c.scratch.Bytes)
	if _, err := c.adminLocked(&cmd, c.scratch.Slice(0, size)); err != nil {
		return fmt.Errorf("nvme: reading log page %#02x: %w", lid, err)
	}
	return nil
}

// recordErrorLog reads the newest Error Information log entries and records each
// non-empty one it has not recorded before as an error_log event.
func (c *Controller) recordErrorLog() {
	var entries [errorLogEntries]spec.ErrorLogEntry
	c.adminMu.Lock()
	clear(c.scratch.Bytes)
	numd := uint32(len(entries)*spec.ErrorLogEntrySize/4 - 1)
	cmd := spec.Command{NSID: 0xFFFFFFFF, CDW10: spec.LogErrorInformation | (numd&0xFFFF)<<16, CDW11: numd >> 16}
	cmd.SetOpcodeCID(uint8(spec.AdminGetLogPage), 0)
	_, err := c.adminLocked(&cmd, c.scratch.Slice(0, len(entries)*spec.ErrorLogEntrySize))
	if err == nil {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&entries[0])), len(entries)*spec.ErrorLogEntrySize), c.scratch.Bytes)
	}
	c.adminMu.Unlock()
	if err != nil {
		c.rec.note(Event{Kind: EventErrorLog, Detail: "reading the error information log failed: " + err.Error()})
		return
	}
	for i := range entries {
		e := &entries[i]
		if e.ErrorCount == 0 || e.ErrorCount <= c.aer.lastErrorCount {
			continue
		}
		c.rec.note(Event{Kind: EventErrorLog, QID: e.SQID, CID: e.CID, Detail: fmt.Sprintf(
			"error %d: %v, LBA %d, NSID %d", e.ErrorCount, e.StatusField(), e.LBA, e.NSID)})
	}
	for i := range entries {
		c.aer.lastErrorCount = max(c.aer.lastErrorCount, entries[i].ErrorCount)
	}
}
