package serve

import "github.com/nvmeperf/nvmeperf/driver/spec"

// Asynchronous events: a controller holds the host's Asynchronous Event Requests
// (at most maxAER) until RaiseAsyncEvent completes the oldest one; an event raised
// while none is held waits (at most maxQueuedEvents) for the next request. Events are
// not masked until their log page is read, as a real controller's are: serve raises
// them only when asked.

const maxQueuedEvents = 16

// RaiseAsyncEvent posts an asynchronous event to every NVM controller of the
// subsystem, as a device whose health changes does: the oldest held Asynchronous
// Event Request completes with DW0 = spec.AsyncEventDW0(typ, info, logPage), or the
// event waits for the host's next request. A SMART / Health event also sets the
// critical warning bit its information names (spare, temperature, reliability) in the
// SMART / Health log. It returns how many controllers took the event. It is how hosts'
// event handling is tested; it may wait for a host to read what is sent to it.
func (s *Server) RaiseAsyncEvent(typ, info, logPage uint8) int {
	if typ == spec.AsyncEventTypeSMART {
		s.criticalWarning.Or(criticalWarningBit(info))
	}
	dw0 := spec.AsyncEventDW0(typ, info, logPage)
	s.mu.Lock()
	ctrls := make([]*controller, 0, len(s.ctrls))
	for _, c := range s.ctrls {
		if !c.discovery {
			ctrls = append(ctrls, c)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, c := range ctrls {
		c.mu.Lock()
		if c.dropped || !c.csts.RDY() {
			c.mu.Unlock()
			continue
		}
		held, cid := len(c.aers) > 0, uint16(0)
		switch {
		case held:
			cid = c.aers[0]
			c.aers = c.aers[1:]
		case len(c.events) < maxQueuedEvents:
			c.events = append(c.events, dw0)
		default:
			c.mu.Unlock()
			continue
		}
		admin := c.admin
		c.mu.Unlock()
		n++
		if held {
			admin.completeAER(cid, dw0)
		}
	}
	return n
}

// takeAER handles an Asynchronous Event Request on the admin queue: a waiting event
// completes it at once, else it is held.
func (c *conn) takeAER(sqe *spec.Command) adminResult {
	ctrl := c.ctrl
	ctrl.mu.Lock()
	defer ctrl.mu.Unlock()
	if len(ctrl.events) > 0 {
		dw0 := ctrl.events[0]
		ctrl.events = ctrl.events[1:]
		return adminResult{dw0: dw0}
	}
	if len(ctrl.aers) >= maxAER {
		return statusOf(spec.SCTCommandSpecific, spec.SCAsyncEventLimitExceeded)
	}
	ctrl.aers = append(ctrl.aers, sqe.CID())
	return adminResult{hold: true}
}

// completeAER answers a held request from outside the admin goroutine; wmu orders it
// with the admin goroutine's own answers. A connection gone meanwhile loses the answer
// with the rest of its queue.
func (c *conn) completeAER(cid uint16, dw0 uint32) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	cpl := spec.Completion{CID: cid, DW0: dw0}
	c.respond(&cpl)
	_ = c.w.Flush()
}
