package sim

import (
	"sync/atomic"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// cacheLine is the span the queue structures are padded to: two 64-byte lines, as the
// adjacent-line prefetcher of x86 cores pairs them, so a queue's device state never
// shares a line with another queue's (inline mode: another worker's) hot data.
const cacheLine = 128

// completionQueue is the device side of a CQ. Only the thread that services its
// submission queues touches it: the device thread, or in inline mode the host thread
// that rings the queue's doorbells.
type completionQueue struct {
	cqState
	_ [(cacheLine - unsafe.Sizeof(cqState{})%cacheLine) % cacheLine]byte
}

type cqState struct {
	id     uint16
	size   uint32
	ring   []byte
	headDB *uint32 // CQ head doorbell in BAR0
	// shadowHead is the CQ head's shadow doorbell slot, nil when not in use (shadowdb.go)
	shadowHead *uint32
	tail       uint32
	phase      uint16 // phase tag of the entries being posted now: 1 on the first lap
	// reserved counts commands fetched for this CQ whose completion is not posted yet;
	// fetching stops when posted-but-unconsumed plus reserved would fill the ring, so a
	// completion never overwrites an entry the host has not consumed.
	reserved uint32
	head     uint32 // last valid head the host rang
	badHead  uint32 // last invalid head value counted, so it is counted once
	sqs      int    // submission queues attached
	pin      *atomic.Int32
	full     bool // fetching is stalled on this CQ (for the stall counter)
}

// free is the number of completions that can still be promised.
func (cq *completionQueue) free(c *Controller) uint32 {
	h := cq.headValue() // shadowdb.go
	switch {
	case h == cq.head:
	case h >= cq.size:
		if h != cq.badHead {
			cq.badHead = h
			c.stats.invalidDoorbells.Add(1)
			c.violation(ViolationDoorbellValue, "CQ %d head %d, queue has %d entries", cq.id, h, cq.size)
		}
	case (h+cq.size-cq.head)%cq.size > (cq.tail+cq.size-cq.head)%cq.size:
		// The host consumed entries the controller has not posted.
		if h != cq.badHead {
			cq.badHead = h
			c.violation(ViolationDoorbellValue, "CQ %d head %d is past the last posted entry %d", cq.id, h, cq.tail)
		}
	default:
		cq.head = h
	}
	used := (cq.tail + cq.size - cq.head) % cq.size
	return cq.size - 1 - used - cq.reserved
}

// post writes one completion entry. The first three dwords are plain stores; the
// fourth, holding the phase tag, is one plain store after them (bus.Store32: ordered
// after every earlier store, a release for the race detector), so the host, which reads
// the tag first with acquire ordering, never sees a new phase with stale contents. No
// locked instruction: sync/atomic's Store is XCHG on amd64, four of them per entry
// cost more than the rest of a null command.
func (cq *completionQueue) post(dw0 uint32, sqhd, sqid, cid uint16, st spec.Status) {
	p := unsafe.Pointer(&cq.ring[cq.tail*spec.CQESize])
	*(*uint32)(p) = dw0
	*(*uint32)(unsafe.Add(p, 4)) = 0
	*(*uint32)(unsafe.Add(p, 8)) = uint32(sqhd) | uint32(sqid)<<16
	status := uint16(st)<<1 | cq.phase
	bus.Store32((*uint32)(unsafe.Add(p, 12)), uint32(cid)|uint32(status)<<16)
	cq.tail++
	if cq.tail == cq.size {
		cq.tail = 0
		cq.phase ^= 1
	}
}

// submissionQueue is the device side of an SQ, with the working state of the commands
// it executes (PRP walk output, staging, counters, completions of the current pass), so
// that in inline mode each queue's thread runs the model without sharing any of it.
// Only the thread that services the queue touches it.
type submissionQueue struct {
	sqState
	_ [(cacheLine - unsafe.Sizeof(sqState{})%cacheLine) % cacheLine]byte
}

type sqState struct {
	id     uint16
	size   uint32
	ring   []byte
	tailDB *uint32 // SQ tail doorbell in BAR0
	// Shadow doorbell and EventIdx slots, nil when not in use (shadowdb.go).
	shadowTail, eventIdx *uint32
	head                 uint32
	tail                 uint32 // last valid tail the host rang
	badTail              uint32
	cq                   *completionQueue
	pin                  *atomic.Int32
	// inflight counts commands fetched from this queue and not yet completed.
	inflight int

	segs    [][]byte // PRP walk output, sized for the largest transfer
	scratch []byte   // Dataset Management ranges
	blk     []byte   // one block's data and metadata (metadata formats)
	// dmaCache is the region of the last address this queue's commands translated.
	dmaCache regionCache
	counts   ioCounts // this pass's statistics, added to the controller's once per pass
	// done holds the completions of the current pass; they are posted together once
	// the pass has executed its commands (one CQ write pass).
	done  [fetchBurst]doneEntry
	ndone int
}

// doneEntry is a completion waiting for the end of its pass.
type doneEntry struct {
	dw0    uint32
	sqhd   uint16
	cid    uint16
	status spec.Status
}

// ioCounts are per-pass statistics; plain fields, owned by the servicing thread.
type ioCounts struct {
	ios, reads, writes, readBytes, writeBytes, completions, errors uint64
}

// fetch copies the entry at the head into cmd and advances the head.
func (sq *submissionQueue) fetch(cmd *spec.Command) {
	*cmd = *(*spec.Command)(unsafe.Pointer(&sq.ring[sq.head*spec.SQESize]))
	sq.head++
	if sq.head == sq.size {
		sq.head = 0
	}
}

// pending is a completion waiting for its time (nand model, delay fault).
type pending struct {
	due    int64
	sq     *submissionQueue
	cid    uint16
	status spec.Status
	dw0    uint32
}

// timerHeap is a binary min-heap on due. Its backing array is sized when queues are
// created, so pushes on the I/O path never allocate.
type timerHeap []pending

func (h *timerHeap) push(p pending) {
	*h = append(*h, p)
	s := *h
	i := len(s) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if s[parent].due <= s[i].due {
			break
		}
		s[parent], s[i] = s[i], s[parent]
		i = parent
	}
}

func (h *timerHeap) pop() pending {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = pending{}
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		m := l
		if r := l + 1; r < len(s) && s[r].due < s[l].due {
			m = r
		}
		if s[i].due <= s[m].due {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// removeSQ takes out every entry of sq, calling fn on each, and restores heap order.
func (h *timerHeap) removeSQ(sq *submissionQueue, fn func(p pending)) {
	s := *h
	kept := s[:0]
	for _, p := range s {
		if p.sq == sq {
			fn(p)
			continue
		}
		kept = append(kept, p)
	}
	clear(s[len(kept):])
	*h = kept[:0]
	for _, p := range kept {
		h.push(p)
	}
}
