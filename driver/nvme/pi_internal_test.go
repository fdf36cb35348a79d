package nvme

import (
	"errors"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

type oneShot struct{ done int }

func (h *oneShot) Complete(*target.Request) { h.done++ }

// TestHostChecksPI: with PRACT=0 nvmeperf checks the PI of what it reads itself, so a
// device that does not check (here: PRCHK withheld from the commands) cannot pass
// corrupted data for good. Guard and reference tag corruption are both caught.
func TestHostChecksPI(t *testing.T) {
	for _, separate := range []bool{false, true} {
		cfg := sim.DefaultConfig()
		cfg.NamespaceSize, cfg.LBASize, cfg.Store, cfg.MDTS = 8<<20, 512, sim.StoreMemory, 1
		cfg.Format = sim.FormatConfig{MetadataSize: 8, Extended: !separate, PIType: 1}
		dev, err := sim.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer dev.Close()
		c, err := Attach(dev.Registers(), dev.Allocator(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Detach()
		h := &oneShot{}
		tq, err := NewTarget(c.Namespace(1), target.Info{}, nil).OpenQueue(target.QueueConfig{
			Depth: 1, IOSize: 16 << 10, Handler: h,
			Protection: target.Protection{Check: target.PICheckGuard | target.PICheckAppTag | target.PICheckRefTag},
		})
		if err != nil {
			t.Fatal(err)
		}
		q := tq.(*nsQueue)
		q.layout.prinfo &^= spec.RWPRCHKMask // the device checks nothing; nvmeperf still does
		run := func(r *target.Request) {
			t.Helper()
			want := h.done + 1
			if err := q.Submit(r); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for h.done < want {
				if _, err := q.Poll(); err != nil {
					t.Fatal(err)
				}
				if time.Now().After(deadline) {
					t.Fatal("no completion in 10 s")
				}
			}
		}
		for i := range q.Buffer(0) {
			q.Buffer(0)[i] = byte(i * 13)
		}
		w := &target.Request{Op: target.OpWrite, Offset: 512 * 100, Length: 16 << 10}
		run(w)
		if w.Err != nil {
			t.Fatal(w.Err)
		}
		r := &target.Request{Op: target.OpRead, Offset: 512 * 100, Length: 16 << 10}
		run(r)
		if r.Err != nil {
			t.Fatalf("clean read: %v", r.Err)
		}
		// Spoil block 101 behind nvmeperf's back (a raw write that asks the device to
		// check nothing), then read the run again: nvmeperf itself finds the bad field.
		data := append([]byte(nil), q.Buffer(0)[512:2*512]...)
		good := spec.PI{Guard: spec.CRC16T10DIF(0, data), AppTag: piAppTag, RefTag: 101}
		for _, tc := range []struct {
			pi    spec.PI
			field spec.PIField
		}{
			{spec.PI{Guard: good.Guard ^ 0x100, AppTag: good.AppTag, RefTag: good.RefTag}, spec.PIGuard},
			{spec.PI{Guard: good.Guard, AppTag: good.AppTag, RefTag: 7}, spec.PIRefTag},
			{spec.PI{Guard: good.Guard, AppTag: 0x0101, RefTag: good.RefTag}, spec.PIAppTag},
		} {
			rawWrite(t, c, 101, data, tc.pi, separate)
			r = &target.Request{Op: target.OpRead, Offset: 512 * 100, Length: 16 << 10}
			run(r)
			var pe *PIError
			if !errors.As(r.Err, &pe) || pe.Field != tc.field || pe.LBA != 101 {
				t.Fatalf("separate=%t: spoiled %s: read error %v, want nvmeperf's %s check to fail at LBA 101", separate, tc.field, r.Err, tc.field)
			}
		}
		rawWrite(t, c, 101, data, good, separate)
		r = &target.Request{Op: target.OpRead, Offset: 512 * 100, Length: 16 << 10}
		run(r)
		if r.Err != nil {
			t.Fatalf("separate=%t: restored block: %v", separate, r.Err)
		}
		tq.Close()
	}
}

// rawWrite writes one 512-byte block with the given PI through its own queue pair,
// with PRCHK clear so the device stores whatever it gets.
func rawWrite(t *testing.T, c *Controller, lba uint64, data []byte, pi spec.PI, separate bool) {
	t.Helper()
	qp, err := c.NewIOQPair(QPairOptions{Entries: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer c.FreeIOQPair(qp)
	buf, err := c.dma.Alloc(520)
	if err != nil {
		t.Fatal(err)
	}
	defer c.dma.Free(buf)
	copy(buf.Bytes, data)
	spec.PutPI(buf.Bytes[512:], pi)
	var cmd spec.Command
	c.Namespace(1).WriteCommand(&cmd, lba, 1)
	xfer := buf
	if separate {
		cmd.MPTR = buf.Addr + 512
		xfer = buf.Slice(0, 512)
	}
	w := &rawWaiter{}
	if err := qp.Submit(&cmd, xfer, w, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !w.done {
		if _, err := qp.Poll(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("raw write did not complete")
		}
	}
	if !w.st.OK() {
		t.Fatalf("raw write: %v", w.st)
	}
}

type rawWaiter struct {
	done bool
	st   spec.Status
}

func (w *rawWaiter) CommandDone(_ any, cpl *spec.Completion) { w.done, w.st = true, cpl.StatusField() }
