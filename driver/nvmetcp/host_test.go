package nvmetcp

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

type countCompleter struct{ cpls []spec.Completion }

func (c *countCompleter) Complete(cpl *spec.Completion) { c.cpls = append(c.cpls, *cpl) }

// fakeController accepts one host connection, answers ICReq and Connect, then runs
// script with the connection's reader and writer.
func fakeController(t *testing.T, script func(r *Reader, w *Writer)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
		r, w := NewReader(nc, 64<<10, 1<<20), NewWriter(nc, 64<<10)
		if h, err := r.Next(); err != nil || h.CH.Type != TypeICReq {
			t.Errorf("fake controller: want ICReq, got %v", err)
			return
		}
		w.ICResp(0, Digests{}, 8192)
		if w.Flush() != nil {
			return
		}
		h, err := r.Next()
		if err != nil || h.CH.Type != TypeCapsuleCmd || h.CapsuleCmd.SQE.Opcode() != spec.OpcodeFabrics {
			t.Errorf("fake controller: want Connect, got %v", err)
			return
		}
		_ = r.Discard()
		w.CapsuleResp(&spec.Completion{CID: h.CapsuleCmd.SQE.CID(), DW0: 7})
		if w.Flush() != nil {
			return
		}
		script(r, w)
	}()
	return ln.Addr().String()
}

// TestHostRejectsMalformedControllerPDUs: PDUs a controller must not send end the
// connection with an H2CTermReq carrying the right fatal error status, and the queue
// reports a clear error.
func TestHostRejectsMalformedControllerPDUs(t *testing.T) {
	cases := []struct {
		name    string
		send    func(w *Writer, cid uint16)
		fes     uint16 // 0: no TermReq expected
		errText string
	}{
		{"C2HData beyond the read", func(w *Writer, cid uint16) { w.C2HData(cid, 4096, make([]byte, 512), true, true) },
			FESDataOutOfRange, "expected offset 0"},
		{"R2T for a read", func(w *Writer, cid uint16) { w.R2T(cid, 1, 0, 4096) }, FESInvalidHeaderField, "no write in flight"},
		{"C2HData for an unknown CID", func(w *Writer, cid uint16) { w.C2HData(cid+1, 0, make([]byte, 512), true, true) },
			FESInvalidHeaderField, "no read in flight"},
		{"unknown PDU type", func(w *Writer, cid uint16) { w.Raw([]byte{0x7E, 0, 8, 0, 8, 0, 0, 0}) }, FESInvalidHeaderField, "PDU type"},
		{"ICResp after setup", func(w *Writer, cid uint16) { w.ICResp(0, Digests{}, 8192) }, FESInvalidHeaderField, "does not send ICResp"},
		{"controller TermReq", func(w *Writer, cid uint16) { w.TermReq(false, FESHeaderDigestError, 0, nil) }, 0, "header digest error"},
		{"connection closed", nil, 0, "closed the connection"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gotFES := make(chan uint16, 1)
			addr := fakeController(t, func(r *Reader, w *Writer) {
				h, err := r.Next()
				if err != nil || h.CH.Type != TypeCapsuleCmd {
					t.Errorf("fake controller: want the read capsule: %v", err)
					return
				}
				if tc.send == nil {
					return // close
				}
				tc.send(w, h.CapsuleCmd.SQE.CID())
				if w.Flush() != nil {
					return
				}
				h, err = r.Next()
				if err == nil && h.CH.Type == TypeH2CTermReq {
					gotFES <- h.TermReq.FES
				}
			})
			host := NewHost(HostConfig{Addr: addr, SubNQN: "nqn.test", HostNQN: "nqn.host"})
			fq, err := host.ConnectQueue(nvme.FabricQueueConfig{QID: 0, Entries: 8, Requests: 7, CIDMask: 7, InCapsuleData: 8128, MaxTransfer: 8192})
			if err != nil {
				t.Fatal(err)
			}
			defer fq.Close()
			if host.ControllerID() != 7 {
				t.Fatalf("CNTLID %d, want 7 from the Connect response", host.ControllerID())
			}
			cmd := spec.Command{}
			cmd.SetOpcodeCID(uint8(spec.AdminIdentify), 3)
			if err := fq.Submit(&cmd, make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
			var done countCompleter
			deadline := time.Now().Add(60 * time.Second)
			for err == nil && time.Now().Before(deadline) {
				err = fq.Process(&done)
			}
			if err == nil || !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("error %v, want one saying %q", err, tc.errText)
			}
			if len(done.cpls) != 0 {
				t.Fatalf("completions %+v from a broken stream", done.cpls)
			}
			if tc.fes != 0 {
				select {
				case fes := <-gotFES:
					if fes != tc.fes {
						t.Fatalf("H2CTermReq FES %#x, want %#x", fes, tc.fes)
					}
				case <-time.After(30 * time.Second):
					t.Fatal("no H2CTermReq")
				}
			}
		})
	}
}

// TestHostOneWritePerPoll: every capsule submitted before a poll leaves in one write
// system call, the transport's doorbell.
func TestHostOneWritePerPoll(t *testing.T) {
	got := make(chan int, 1)
	release := make(chan struct{})
	defer close(release)
	addr := fakeController(t, func(r *Reader, w *Writer) {
		n := 0
		for n < 8 {
			h, err := r.Next()
			if err != nil || h.CH.Type != TypeCapsuleCmd {
				break
			}
			n++
			w.CapsuleResp(&spec.Completion{CID: h.CapsuleCmd.SQE.CID()})
		}
		_ = w.Flush()
		got <- n
		<-release // the connection stays open until the host has read everything
	})
	host := NewHost(HostConfig{Addr: addr, SubNQN: "nqn.test", HostNQN: "nqn.host"})
	fq, err := host.ConnectQueue(nvme.FabricQueueConfig{QID: 0, Entries: 16, Requests: 15, CIDMask: 15, InCapsuleData: 8128, MaxTransfer: 8192})
	if err != nil {
		t.Fatal(err)
	}
	defer fq.Close()
	q := fq.(*hostQueue)
	for i := range 8 {
		cmd := spec.Command{}
		cmd.SetOpcodeCID(uint8(spec.AdminKeepAlive), uint16(i))
		if err := fq.Submit(&cmd, nil); err != nil {
			t.Fatal(err)
		}
	}
	before := q.w.Flushes
	var done countCompleter
	if err := fq.Process(&done); err != nil {
		t.Fatal(err)
	}
	if d := q.w.Flushes - before; d != 1 {
		t.Fatalf("%d writes for 8 capsules in one poll, want 1", d)
	}
	if n := <-got; n != 8 {
		t.Fatalf("controller got %d capsules", n)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(done.cpls) < 8 && time.Now().Before(deadline) {
		if err := fq.Process(&done); err != nil {
			t.Fatal(err)
		}
	}
	if len(done.cpls) != 8 {
		t.Fatalf("%d completions, want 8", len(done.cpls))
	}
}

// FuzzHostStream feeds a host queue with a read and a write in flight arbitrary bytes
// as the controller's stream: it must never panic, and it must end with an error or
// completions, never hang (the stream ends).
func FuzzHostStream(f *testing.F) {
	var seed Writer
	seedBuf := &bytesBuffer{}
	seed = *NewWriter(seedBuf, 4096)
	seed.C2HData(0, 0, make([]byte, 512), true, true)
	seed.R2T(1, 1, 0, 4096)
	seed.CapsuleResp(&spec.Completion{CID: 1})
	_ = seed.Flush()
	f.Add(seedBuf.b)
	f.Add([]byte{0x07, 0x0C, 24, 24, 0xFF, 0xFF, 0, 0})
	f.Add([]byte{0x05, 0, 24, 0, 24, 0, 0, 0, 1, 2, 3})
	f.Fuzz(func(t *testing.T, stream []byte) {
		hostEnd, ctrlEnd := net.Pipe()
		defer hostEnd.Close()
		go func() {
			go func() { _, _ = io.Copy(io.Discard, ctrlEnd) }()
			_, _ = ctrlEnd.Write(stream)
			ctrlEnd.Close()
		}()
		q, err := newHostQueue(hostEnd, HostConfig{}, nvme.FabricQueueConfig{Entries: 8, Requests: 7, CIDMask: 7, InCapsuleData: 0, MaxTransfer: 8192})
		if err != nil {
			t.Fatal(err)
		}
		q.maxH2C = 4096
		rd, wr := spec.Command{}, spec.Command{}
		rd.SetOpcodeCID(uint8(spec.IORead), 0)
		wr.SetOpcodeCID(uint8(spec.IOWrite), 1)
		_ = q.Submit(&rd, make([]byte, 512))
		_ = q.Submit(&wr, make([]byte, 4096))
		var done countCompleter
		for range 10000 {
			if err := q.Process(&done); err != nil {
				return
			}
		}
		t.Fatalf("no end of stream after 10000 polls (%d completions)", len(done.cpls))
	})
}

type bytesBuffer struct{ b []byte }

func (w *bytesBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// TestHostControllerStallsMidPDU: a controller that sends part of a PDU and then
// nothing fails the queue after midPDUTimeout instead of hanging the worker.
func TestHostControllerStallsMidPDU(t *testing.T) {
	old := midPDUTimeout
	midPDUTimeout = 300 * time.Millisecond
	defer func() { midPDUTimeout = old }()
	release := make(chan struct{})
	defer close(release)
	addr := fakeController(t, func(r *Reader, w *Writer) {
		if _, err := r.Next(); err != nil {
			return
		}
		w.Raw([]byte{byte(TypeCapsuleResp), 0, CapsuleRespSize, 0, CapsuleRespSize, 0, 0, 0, 1, 2})
		_ = w.Flush()
		<-release
	})
	host := NewHost(HostConfig{Addr: addr, SubNQN: "nqn.test", HostNQN: "nqn.host"})
	fq, err := host.ConnectQueue(nvme.FabricQueueConfig{QID: 0, Entries: 8, Requests: 7, CIDMask: 7, InCapsuleData: 8128, MaxTransfer: 8192})
	if err != nil {
		t.Fatal(err)
	}
	defer fq.Close()
	cmd := spec.Command{}
	cmd.SetOpcodeCID(uint8(spec.AdminKeepAlive), 1)
	if err := fq.Submit(&cmd, nil); err != nil {
		t.Fatal(err)
	}
	var done countCompleter
	deadline := time.Now().Add(60 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		err = fq.Process(&done)
	}
	if err == nil || !strings.Contains(err.Error(), "part of a PDU") {
		t.Fatalf("error %v, want one saying the controller stopped mid-PDU", err)
	}
}
