package nvme

import (
	"sync"
	"time"
)

// RecoveryOptions set how the driver deals with commands that do not complete and
// with a controller that fails (docs/recovery.md).
type RecoveryOptions struct {
	// IOTimeout is how long an I/O command may be outstanding before the queue pair
	// aborts it (Abort admin command); 0 means never. When the Abort fails, the
	// controller says it did not abort the command, or the aborted command still does
	// not complete within another IOTimeout, the controller is failed.
	IOTimeout time.Duration
}

// EventKind names what happened to a controller.
type EventKind string

// Event kinds.
const (
	EventTimeout EventKind = "timeout" // a command was outstanding past its timeout
	EventAbort   EventKind = "abort"   // an Abort command was sent, and what it did
)

// Event is one recovery-related happening on a controller.
type Event struct {
	Time   time.Time
	Kind   EventKind
	QID    uint16 // queue the event concerns (0: admin or the whole controller)
	CID    uint16 // command identifier, when the event concerns one command
	Detail string
}

// maxEvents bounds the event log: a drive that times out every command must not make
// a long run's memory grow without bound. Events past it are only counted.
const maxEvents = 1000

// recoveryLog records events from any goroutine (workers and the control path).
type recoveryLog struct {
	mu      sync.Mutex
	events  []Event
	dropped int
	counts  map[EventKind]int
}

func (l *recoveryLog) note(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[EventKind]int{}
	}
	l.counts[e.Kind]++
	if len(l.events) >= maxEvents {
		l.dropped++
		return
	}
	l.events = append(l.events, e)
}

// Events returns the controller's recovery events so far, oldest first, and how many
// were left out because the log was full.
func (c *Controller) Events() (events []Event, dropped int) {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	return append([]Event(nil), c.rec.events...), c.rec.dropped
}

// EventCount is how many events of kind happened, logged or not.
func (c *Controller) EventCount(kind EventKind) int {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	return c.rec.counts[kind]
}
