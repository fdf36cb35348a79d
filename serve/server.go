// Package serve is an NVMe/TCP target: it serves namespaces backed by any
// target.Target — a simulated controller's namespaces opened through the userspace
// driver (so every sim model and fault key applies), or kernel block devices and files
// through io_uring — to NVMe/TCP hosts, with a discovery controller beside the NVM
// subsystem. `nvmeperf serve` is its command line.
//
// Each connection is one queue pair, as NVMe/TCP defines. An admin connection runs in
// one goroutine; an I/O connection has a reader goroutine (PDUs in) and an executor
// goroutine that owns the connection's backend queues (one per namespace), submits,
// polls, and writes every PDU a poll produced with one writev.
package serve

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// DefaultNQN is the subsystem NQN served when Config.NQN is empty.
const DefaultNQN = "nqn.2026-11.io.nvmeperf:sim"

// DefaultListen is where `nvmeperf serve` listens by default (4420 is the NVMe-oF port).
const DefaultListen = "127.0.0.1:4420"

// Defaults of Config's tunables.
const (
	DefaultMaxH2CData    = 128 << 10
	DefaultInCapsuleData = 8192
	DefaultMaxTransfer   = 128 << 10
	DefaultQueueSize     = 128
	DefaultMaxIOQueues   = 64
	// adminInCapsule is the in-capsule data admin queues accept (Connect data and small
	// admin payloads); hosts size admin capsules at 8 KiB.
	adminInCapsule = 8192
	// maxAdminData bounds what one admin command returns.
	maxAdminData   = 64 << 10
	keepAliveGrace = 2 * time.Second
)

// Config sets up a Server.
type Config struct {
	// NQN is the NVM subsystem's NQN; DefaultNQN when empty.
	NQN string
	// Namespaces back NSIDs 1..len(Namespaces). The server opens one queue per
	// namespace per I/O connection and never closes the targets themselves.
	Namespaces []target.Target
	// MaxH2CData is the largest H2CData PDU hosts may send (ICResp MAXH2CDATA).
	MaxH2CData uint32
	// InCapsuleData is the largest write carried in an I/O command capsule (IOCCSZ).
	InCapsuleData int
	// MaxTransfer is the largest I/O in bytes (MDTS); rounded down to a power of two of
	// 4 KiB pages and to the namespaces' own limits.
	MaxTransfer int
	// QueueSize is the most entries an I/O queue may have (CAP.MQES+1), at most 1024.
	QueueSize int
	// MaxIOQueues is the most I/O queues a controller grants (Number of Queues).
	MaxIOQueues int
	// CPDA is the data alignment the target asks of hosts: (CPDA+1)*4 bytes.
	CPDA uint8
	// Serial and Model fill Identify Controller; defaults are derived from the NQN.
	Serial, Model string
}

// Stats count what the server did; read with Server.Stats.
type Stats struct {
	Connections   uint64 // TCP connections accepted
	Controllers   uint64 // controllers created by admin Connects
	Commands      uint64 // I/O commands completed
	ProtocolFails uint64 // connections ended by a fatal transport error (TermReq sent)
}

// Server is an NVMe/TCP target.
type Server struct {
	cfg         Config
	mdts        int // bytes
	mdtsExp     uint8
	lbaSize     []uint32
	blocks      []uint64
	mu          sync.Mutex
	listeners   []net.Listener
	conns       map[*conn]struct{}
	ctrls       map[uint16]*controller
	nextCNTLID  uint16
	closed      bool
	wg          sync.WaitGroup
	stats       Stats
	discoveryTo net.Addr // address listed in the discovery log page
	// SMART / Health (health.go): live I/O connections' counters, closed ones' sum.
	started         time.Time
	liveIO          map[*ioCounters]struct{}
	closedIO        ioTotals
	criticalWarning atomic.Uint32
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Server, error) {
	if cfg.NQN == "" {
		cfg.NQN = DefaultNQN
	}
	if err := CheckNQN(cfg.NQN); err != nil {
		return nil, fmt.Errorf("serve: NQN %q: %w", cfg.NQN, err)
	}
	if cfg.NQN == spec.DiscoveryNQN {
		return nil, fmt.Errorf("serve: NQN %q is the discovery subsystem's; name the NVM subsystem something else", cfg.NQN)
	}
	if len(cfg.Namespaces) == 0 {
		return nil, errors.New("serve: no namespace to serve")
	}
	if cfg.MaxH2CData == 0 {
		cfg.MaxH2CData = DefaultMaxH2CData
	}
	if cfg.MaxH2CData < 4096 || cfg.MaxH2CData%4 != 0 {
		return nil, fmt.Errorf("serve: MAXH2CDATA %d: must be a multiple of 4 and at least 4096", cfg.MaxH2CData)
	}
	if cfg.InCapsuleData == 0 {
		cfg.InCapsuleData = DefaultInCapsuleData
	}
	if cfg.InCapsuleData < 0 || cfg.InCapsuleData%16 != 0 || cfg.InCapsuleData > 1<<20 {
		return nil, fmt.Errorf("serve: in-capsule data size %d: must be a multiple of 16 between 0 and 1 MiB", cfg.InCapsuleData)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.QueueSize < 2 || cfg.QueueSize > 1024 {
		return nil, fmt.Errorf("serve: queue size %d: must be between 2 and 1024", cfg.QueueSize)
	}
	if cfg.MaxIOQueues == 0 {
		cfg.MaxIOQueues = DefaultMaxIOQueues
	}
	if cfg.MaxIOQueues < 1 || cfg.MaxIOQueues > 0xFFFE {
		return nil, fmt.Errorf("serve: I/O queue count %d: must be between 1 and 65534", cfg.MaxIOQueues)
	}
	if cfg.CPDA > 31 {
		return nil, fmt.Errorf("serve: CPDA %d: at most 31", cfg.CPDA)
	}
	if cfg.MaxTransfer == 0 {
		cfg.MaxTransfer = DefaultMaxTransfer
	}
	s := &Server{cfg: cfg, conns: map[*conn]struct{}{}, ctrls: map[uint16]*controller{}, nextCNTLID: 1,
		started: time.Now(), liveIO: map[*ioCounters]struct{}{}}
	limit := cfg.MaxTransfer
	for i, t := range cfg.Namespaces {
		info := t.Info()
		if info.LBASize < 512 || info.LBASize&(info.LBASize-1) != 0 {
			return nil, fmt.Errorf("serve: namespace %d (%s): logical block size %d is not a power of two of at least 512", i+1, info.Name, info.LBASize)
		}
		if info.Capacity < uint64(info.LBASize) {
			return nil, fmt.Errorf("serve: namespace %d (%s) is empty", i+1, info.Name)
		}
		if info.MaxTransfer != 0 && int(info.MaxTransfer) < limit {
			limit = int(info.MaxTransfer)
		}
		s.lbaSize = append(s.lbaSize, info.LBASize)
		s.blocks = append(s.blocks, info.Capacity/uint64(info.LBASize))
	}
	if limit < 4096 {
		return nil, fmt.Errorf("serve: maximum transfer %d bytes: must be at least 4096", limit)
	}
	// MDTS is a power of two of the 4 KiB minimum page.
	s.mdtsExp = uint8(bits.Len(uint(limit/4096)) - 1)
	s.mdts = 4096 << s.mdtsExp
	for i, lba := range s.lbaSize {
		if s.mdts < int(lba) {
			return nil, fmt.Errorf("serve: namespace %d: logical block of %d bytes exceeds the maximum transfer of %d", i+1, lba, s.mdts)
		}
	}
	if s.cfg.Serial == "" {
		s.cfg.Serial = fmt.Sprintf("NP%08X", crc32.ChecksumIEEE([]byte(cfg.NQN)))
	}
	if s.cfg.Model == "" {
		s.cfg.Model = "nvmeperf serve"
	}
	return s, nil
}

// CheckNQN validates an NVMe Qualified Name the way hosts do: "nqn." prefix (or the
// UUID form), at most 223 bytes, printable ASCII.
func CheckNQN(nqn string) error {
	if !strings.HasPrefix(nqn, "nqn.") {
		return errors.New(`must start with "nqn."`)
	}
	if len(nqn) > spec.NQNMaxLen {
		return fmt.Errorf("%d bytes, at most %d", len(nqn), spec.NQNMaxLen)
	}
	for _, c := range nqn {
		if c <= ' ' || c > '~' {
			return fmt.Errorf("character %q: only printable ASCII without spaces", c)
		}
	}
	return nil
}

// Config is the configuration in use, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// MaxTransfer is the MDTS in bytes the controllers report.
func (s *Server) MaxTransfer() int { return s.mdts }

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Serve accepts connections on ln until Close; it returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return errors.New("serve: server closed")
	}
	s.listeners = append(s.listeners, ln)
	if s.discoveryTo == nil {
		s.discoveryTo = ln.Addr()
	}
	s.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("serve: accepting on %s: %w", ln.Addr(), err)
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.stats.Connections++
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.run()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops listening, ends every connection and waits for their goroutines (which
// close their backend queues). The namespaces' targets stay open.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var errs []error
	for _, ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

// DropConnections closes every live connection at once and keeps listening, as a
// target that restarts or loses its network does: each host loses its controller (its
// admin queue goes) and must connect again. It returns how many connections it closed.
// It is how hosts' recovery is tested.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
	return len(s.conns)
}

// SetFatal sets CSTS.CFS (Controller Fatal Status) on every controller the server has
// now, as a controller that hit an internal error does; hosts see it with Property Get
// and must reset (a new association gets a healthy controller). It returns how many
// controllers it failed. It is how hosts' recovery is tested.
func (s *Server) SetFatal() int {
	s.mu.Lock()
	ctrls := make([]*controller, 0, len(s.ctrls))
	for _, c := range s.ctrls {
		if !c.discovery {
			ctrls = append(ctrls, c)
		}
	}
	s.mu.Unlock()
	for _, c := range ctrls {
		c.mu.Lock()
		c.csts |= spec.CSTSFatal
		c.mu.Unlock()
	}
	return len(ctrls)
}

// controller is one host's association with a subsystem, created by an admin Connect
// with CNTLID FFFFh and joined by the host's I/O queue Connects.
type controller struct {
	id        uint16
	discovery bool
	hostNQN   string
	hostID    [16]byte
	kato      uint32 // ms

	mu      sync.Mutex
	cc      spec.CC
	csts    spec.CSTS
	nrIOQ   int // I/O queues granted by Set Features Number of Queues
	ioConns map[uint16]*conn
	admin   *conn
	aers    []uint16 // CIDs of held Asynchronous Event Requests, oldest first (aer.go)
	events  []uint32 // events (AER DW0) waiting for a request
	dropped bool     // the admin queue is gone: no I/O queue may join
}

func (s *Server) newController(discovery bool, hostNQN string, hostID [16]byte, kato uint32, admin *conn) (*controller, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tries := 0; tries < 0xFFF0; tries++ {
		id := s.nextCNTLID
		s.nextCNTLID++
		if s.nextCNTLID >= 0xFFF0 {
			s.nextCNTLID = 1
		}
		if _, used := s.ctrls[id]; used {
			continue
		}
		c := &controller{id: id, discovery: discovery, hostNQN: hostNQN, hostID: hostID, kato: kato,
			ioConns: map[uint16]*conn{}, admin: admin, nrIOQ: 0}
		s.ctrls[id] = c
		s.stats.Controllers++
		return c, nil
	}
	return nil, errors.New("no free controller ID")
}

// dropController ends a controller when its admin queue goes away: its I/O queues go
// with it.
func (s *Server) dropController(c *controller) {
	s.mu.Lock()
	delete(s.ctrls, c.id)
	s.mu.Unlock()
	c.mu.Lock()
	c.dropped = true
	for _, ioc := range c.ioConns {
		ioc.nc.Close()
	}
	c.mu.Unlock()
}

func (s *Server) lookupController(id uint16) *controller {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctrls[id]
}

func (s *Server) addCommands(n uint64, protocolFail bool) {
	s.mu.Lock()
	s.stats.Commands += n
	if protocolFail {
		s.stats.ProtocolFails++
	}
	s.mu.Unlock()
}
