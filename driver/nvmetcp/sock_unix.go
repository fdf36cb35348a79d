//go:build unix

package nvmetcp

import (
	"io"
	"net"
	"syscall"
	"time"
)

// sockReader is the byte stream under a host queue's Reader. In poll mode a read that
// would block returns errWouldBlock at once (a read(2) on the non-blocking socket
// through syscall.RawConn, with no deadline or timer); otherwise it blocks as
// net.Conn does.
type sockReader struct {
	nc   net.Conn
	raw  syscall.RawConn
	poll bool
	// midPDU bounds each blocking read while a PDU is being read (Process): a
	// controller that stops in the middle of a PDU fails the queue instead of hanging
	// its worker. 0: no bound (connection setup has its own deadline).
	midPDU time.Duration
	// state of the raw read, in fields so the callback (made once) allocates nothing
	buf    []byte
	n      int
	err    error
	readFn func(fd uintptr) bool
}

func (s *sockReader) init(nc net.Conn) error {
	s.nc = nc
	if sc, ok := nc.(syscall.Conn); ok {
		raw, err := sc.SyscallConn()
		if err != nil {
			return err
		}
		s.raw = raw
	}
	s.readFn = s.rawRead
	return nil
}

func (s *sockReader) Read(p []byte) (int, error) {
	if !s.poll || s.raw == nil {
		if s.midPDU == 0 {
			return s.nc.Read(p)
		}
		_ = s.nc.SetReadDeadline(time.Now().Add(s.midPDU))
		n, err := s.nc.Read(p)
		// An expired deadline would also fail the raw reads of poll mode.
		_ = s.nc.SetReadDeadline(time.Time{})
		return n, err
	}
	s.buf = p
	err := s.raw.Read(s.readFn)
	s.buf = nil
	if err != nil {
		return 0, err
	}
	return s.n, s.err
}

func (s *sockReader) rawRead(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), s.buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			s.n, s.err = 0, errWouldBlock
		case err != nil:
			s.n, s.err = 0, err
		case n == 0 && len(s.buf) > 0:
			s.n, s.err = 0, io.EOF
		default:
			s.n, s.err = n, nil
		}
		return true // never park: the caller polls again later
	}
}
