package nvmetcp

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
)

var adminQueueConfig = nvme.FabricQueueConfig{QID: 0, Entries: 8, Requests: 7, CIDMask: 7, InCapsuleData: 8128, MaxTransfer: 8192}

// TestConnectQueueContextCalledOff: a controller that accepts the connection and never
// answers ICReq would hold ConnectQueue for its whole timeout; cancelling the context
// ends the connect at once with the context's error, and the host closes the
// connection.
func TestConnectQueueContextCalledOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if nc, err := ln.Accept(); err == nil {
			accepted <- nc
		}
	}()
	h := NewHost(HostConfig{Addr: ln.Addr().String(), SubNQN: "nqn.2014-08.org.nvmexpress:test", ConnectTimeout: 10 * time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	result := make(chan error, 1)
	go func() {
		fq, err := h.ConnectQueueContext(ctx, adminQueueConfig)
		if fq != nil {
			fq.Close()
		}
		result <- err
	}()
	var nc net.Conn
	select {
	case nc = <-accepted:
	case <-time.After(60 * time.Second):
		t.Fatal("the host did not connect within 60 s")
	}
	defer nc.Close()
	_ = nc.SetReadDeadline(time.Now().Add(60 * time.Second))
	icreq := make([]byte, 128)
	if _, err := io.ReadFull(nc, icreq); err != nil { // the host now waits for ICResp
		t.Fatalf("reading ICReq: %v", err)
	}
	cancel()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("connect: %v, want it called off (context.Canceled)", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the connect goes on 60 s after it was called off")
	}
	if _, err := io.Copy(io.Discard, nc); err != nil {
		t.Fatalf("the host's connection: %v, want it closed by the host (end of stream)", err)
	}
}

// TestConnectQueueContextCancelledBeforeDial: a context already done connects nothing.
func TestConnectQueueContextCancelledBeforeDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := NewHost(HostConfig{Addr: ln.Addr().String(), SubNQN: "nqn.2014-08.org.nvmexpress:test"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fq, err := h.ConnectQueueContext(ctx, adminQueueConfig)
	if fq != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, %v; want no queue and context.Canceled", fq, err)
	}
}
