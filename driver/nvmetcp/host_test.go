package nvmetcp

import (
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
