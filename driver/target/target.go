// Package target is the engine-neutral I/O interface the workload's workers drive: a
// Target (a namespace, block device or file) opens Queues, one per worker thread, and a
// Queue submits Requests and reports their completion from Poll.
//
// The userspace NVMe driver (any transport) and the io_uring engine both implement it,
// so workload, pinning, reporting and JSON are shared by every kind of device.
package target

import (
	"fmt"
	"strings"
)

// Op is the operation of a request.
type Op uint8

// Operations.
const (
	OpRead Op = iota
	OpWrite
)

func (o Op) String() string {
	switch o {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Info describes what is measured, for the report. Fields a target cannot know are empty.
type Info struct {
	Name        string // short label for tables, e.g. "sim 0000:00:00.0 NSID 1" or "/dev/nvme0n1"
	TRID        string // transport ID or path as the user gave it
	Transport   string // "sim", "PCIe", "io_uring", "io_uring-passthru"
	Model       string
	Serial      string
	Firmware    string
	NSID        uint32
	LBASize     uint32 // logical block size in bytes
	Capacity    uint64 // bytes
	MaxTransfer uint32 // largest transfer of one command in bytes (larger I/O is split); 0 when unlimited or unknown
	// CMB is the size in bytes of the controller memory buffer (PCIe), 0 when none;
	// SQInCMB says the I/O submission queues are placed in it.
	CMB     uint64
	SQInCMB bool
}

// DoorbellMode says when a queue tells the device about new submissions.
type DoorbellMode uint8

// Doorbell modes.
const (
	// DoorbellPerPoll rings once per Poll when submissions are pending (SPDK's
	// delay_cmd_submit; io_uring: in chunks of 2, 4, 8, ... SQEs and once per poll). The default.
	DoorbellPerPoll DoorbellMode = iota
	// DoorbellEveryN rings after every N submissions, and in Poll for any remainder.
	DoorbellEveryN
	// DoorbellPerCommand rings on every submission.
	DoorbellPerCommand
)

func (m DoorbellMode) String() string {
	switch m {
	case DoorbellPerPoll:
		return "per-poll"
	case DoorbellEveryN:
		return "every-n"
	case DoorbellPerCommand:
		return "per-command"
	}
	return fmt.Sprintf("doorbell(%d)", uint8(m))
}

// Handler is told about each completed request. Implementations are long-lived (one per
// worker), so passing one costs no allocation.
type Handler interface {
	Complete(r *Request)
}

// QueueConfig sets up one queue.
type QueueConfig struct {
	Depth          int          // most requests in flight
	QueueSize      int          // device queue entries to ask for; 0 = the engine's default
	IOSize         int          // size in bytes of each I/O buffer
	Buffers        int          // number of I/O buffers; 0 = Depth
	BufferOffset   int          // start each buffer this many bytes past a page boundary (-A tests)
	Doorbell       DoorbellMode // when to ring
	DoorbellN      int          // N for DoorbellEveryN
	MaxCompletions int          // most completions one Poll reaps; 0 = no limit
	Handler        Handler      // told of every completion, from Poll
	// FUA sets Force Unit Access on every read and write (spdk_nvme_perf --fua). Queues
	// that cannot carry it refuse it in OpenQueue.
	FUA bool
	// IOUnitSize splits every I/O into commands of at most this many bytes
	// (spdk_nvme_perf -O); 0 means IOSize. Engines that cannot split ignore it.
	IOUnitSize int
	// Protection is what to do with end-to-end protection information on a namespace
	// formatted with it (spdk_nvme_perf -e); ignored on namespaces without PI.
	Protection Protection
}

// QueueStats are a queue's transport counters, named as spdk_nvme_perf
// --transport-stats prints them for PCIe.
type QueueStats struct {
	Polls       uint64 // Poll calls
	IdlePolls   uint64 // Poll calls that completed nothing
	Completions uint64 // commands completed
	Submitted   uint64 // commands submitted to the device
	SQDoorbells uint64 // submission queue tail doorbell writes
	CQDoorbells uint64 // completion queue head doorbell writes
	Queued      uint64 // submissions that waited in software for a free slot
	// Shadow doorbells (PCIe Doorbell Buffer Config): updates of the SQ tail and CQ head
	// shadows, and the doorbell register writes they made unnecessary.
	SQShadowUpdates uint64
	CQShadowUpdates uint64
	ShadowSkips     uint64
	// SQInCMB counts the queue pairs whose submission queue is in the controller memory
	// buffer (PCIe CMB, spdk_nvme_perf's default; -D keeps them in host memory).
	SQInCMB uint64
}

// Add accumulates o into s (a job's queue pairs sum into one record).
func (s *QueueStats) Add(o QueueStats) {
	s.Polls += o.Polls
	s.IdlePolls += o.IdlePolls
	s.Completions += o.Completions
	s.Submitted += o.Submitted
	s.SQDoorbells += o.SQDoorbells
	s.CQDoorbells += o.CQDoorbells
	s.Queued += o.Queued
	s.SQShadowUpdates += o.SQShadowUpdates
	s.CQShadowUpdates += o.CQShadowUpdates
	s.ShadowSkips += o.ShadowSkips
	s.SQInCMB += o.SQInCMB
}

// StatsQueue is implemented by queues that count transport events (the userspace NVMe
// driver's); read it before Close.
type StatsQueue interface {
	TransportStats() QueueStats
}

// Protection selects end-to-end protection information handling (the PRINFO field of
// NVMe reads and writes).
type Protection struct {
	// Action (PRACT=1) makes the controller insert PI on writes and strip it on reads.
	// Without it nvmeperf generates the PI of every block it writes and checks the PI
	// of every block it reads on the fields Check selects.
	Action bool
	// Check (PRCHK) selects the PI fields the controller checks.
	Check PICheck
}

// PICheck is a set of protection information fields to check.
type PICheck uint8

// PI fields.
const (
	PICheckGuard  PICheck = 1 << iota // the CRC-16 guard
	PICheckAppTag                     // the application tag
	PICheckRefTag                     // the reference tag
)

// String lists the fields as spdk_nvme_perf's -e takes them, e.g. "GUARD|REFTAG".
func (c PICheck) String() string {
	var parts []string
	for _, f := range []struct {
		bit  PICheck
		name string
	}{{PICheckGuard, "GUARD"}, {PICheckRefTag, "REFTAG"}, {PICheckAppTag, "APPTAG"}} {
		if c&f.bit != 0 {
			parts = append(parts, f.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// Request is one I/O. The caller owns it and reuses it; the queue reads it in Submit and
// writes Err before calling the Handler.
type Request struct {
	Op     Op
	Offset uint64 // bytes from the start of the target; a multiple of the LBA size
	Length uint32 // bytes; a multiple of the LBA size
	Buf    int    // index of the queue's buffer holding or receiving the data
	Err    error  // set on completion: nil on success

	// For the caller; queues leave these alone.
	Tag   int
	Start int64
}

// Queue is one submission/completion queue pair owned by a single goroutine (locked to
// its OS thread). Nothing in it is safe for concurrent use, and nothing on its
// Submit/Poll path allocates.
type Queue interface {
	// Buffer returns the memory of buffer i (IOSize bytes), reused across requests.
	Buffer(i int) []byte
	// Submit starts r, or queues it in software when the device queue is full. It never
	// calls the Handler; completions come from Poll.
	Submit(r *Request) error
	// Poll rings pending doorbells, reaps up to MaxCompletions completions, and calls
	// the Handler for each. It returns how many completed. An error means the device
	// failed: outstanding requests have been completed with errors.
	Poll() (int, error)
	// Outstanding is the number of submitted requests not yet completed.
	Outstanding() int
	// Close releases the queue; outstanding requests are abandoned.
	Close() error
}

// Target is something to run I/O against.
type Target interface {
	Info() Info
	// OpenQueue creates a queue for the calling goroutine, which should already be
	// locked to its OS thread and pinned.
	OpenQueue(cfg QueueConfig) (Queue, error)
	// Close releases the target after its queues are closed.
	Close() error
}
