//go:build !unix

package nvmetcp

import (
	"errors"
	"net"
	"os"
	"time"
)

// sockReader is the byte stream under a host queue's Reader. Without unix system
// calls, poll mode uses an expired read deadline (slower, but it does not block).
type sockReader struct {
	nc     net.Conn
	poll   bool
	midPDU time.Duration // see sock_unix.go
}

func (s *sockReader) init(nc net.Conn) error { s.nc = nc; return nil }

func (s *sockReader) Read(p []byte) (int, error) {
	if !s.poll {
		if s.midPDU > 0 {
			_ = s.nc.SetReadDeadline(time.Now().Add(s.midPDU))
			defer s.nc.SetReadDeadline(time.Time{})
		}
		return s.nc.Read(p)
	}
	_ = s.nc.SetReadDeadline(time.Now())
	n, err := s.nc.Read(p)
	_ = s.nc.SetReadDeadline(time.Time{})
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, errWouldBlock
	}
	return n, err
}
