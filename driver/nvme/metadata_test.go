package nvme_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/verify"
)

const allPI = target.PICheckGuard | target.PICheckAppTag | target.PICheckRefTag

// roundTrip writes the verify pattern with I/Os of ioSize at a few offsets, reads it
// back and checks every block.
func roundTrip(t *testing.T, dev *sim.Controller, c *nvme.Controller, cfg target.QueueConfig, what string) {
	t.Helper()
	h := newCollector(dev)
	cfg.Handler = h
	cfg.Depth = 2
	q := openTarget(t, c, cfg)
	lbaSize := int(c.Namespace(1).SectorSize())
	const seed = 42
	for i, off := range []uint64{0, 3 << 20, 5<<20 + uint64(lbaSize)} {
		lba := off / uint64(lbaSize)
		verify.Fill(q.Buffer(0), lbaSize, lba, seed)
		w := &target.Request{Op: target.OpWrite, Offset: off, Length: uint32(cfg.IOSize), Buf: 0}
		if err := q.Submit(w); err != nil {
			t.Fatal(err)
		}
		waitAll(t, q, h, h.completed+1)
		if w.Err != nil {
			t.Fatalf("%s: write %d: %v", what, i, w.Err)
		}
		clear(q.Buffer(1))
		r := &target.Request{Op: target.OpRead, Offset: off, Length: uint32(cfg.IOSize), Buf: 1}
		if err := q.Submit(r); err != nil {
			t.Fatal(err)
		}
		waitAll(t, q, h, h.completed+1)
		if r.Err != nil {
			t.Fatalf("%s: read %d: %v", what, i, r.Err)
		}
		buf := q.Buffer(1)
		for b := 0; b < cfg.IOSize/lbaSize; b++ {
			if ok, m := verify.CheckBlock(buf[b*lbaSize:(b+1)*lbaSize], lba+uint64(b), seed); !ok {
				t.Fatalf("%s: %v", what, m)
			}
		}
	}
}

// TestMetadataModesVerify round-trips the verify pattern through every metadata mode:
// extended and separate metadata, no PI and PI types 1 to 3 (first and last bytes),
// PRACT 0 and 1, and PRCHK combinations, with I/Os split across an 8 KiB MDTS.
func TestMetadataModesVerify(t *testing.T) {
	prots := []target.Protection{
		{},
		{Check: allPI},
		{Check: target.PICheckGuard | target.PICheckRefTag},
		{Check: target.PICheckAppTag},
		{Action: true},
		{Action: true, Check: allPI},
	}
	for _, ext := range []bool{true, false} {
		for _, f := range []sim.FormatConfig{
			{MetadataSize: 8}, {MetadataSize: 16},
			{MetadataSize: 8, PIType: 1}, {MetadataSize: 8, PIType: 2}, {MetadataSize: 8, PIType: 3},
			{MetadataSize: 16, PIType: 1}, {MetadataSize: 16, PIType: 3, PIFirst: true}, {MetadataSize: 64, PIType: 2, PIFirst: true},
		} {
			f.Extended = ext
			dev, c := newSim(t, func(cfg *sim.Config) { cfg.MDTS = 1; cfg.NamespaceSize = 8 << 20; cfg.Format = f })
			for _, p := range prots {
				if f.PIType == 0 && p != (target.Protection{}) && p != prots[1] {
					continue // -e is ignored without PI: two runs show it
				}
				what := fmt.Sprintf("%s PRACT=%t PRCHK=%s", c.Namespace(1).Format(), p.Action, p.Check)
				roundTrip(t, dev, c, target.QueueConfig{IOSize: 24 << 10, Protection: p}, what)
			}
		}
	}
}

// TestMetadata4KiB runs an extended 4096+8 PI format on a 4 KiB-LBA namespace, where
// one command carries a single block across an 8 KiB MDTS.
func TestMetadata4KiB(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) {
		cfg.LBASize = 4096
		cfg.MDTS = 1
		cfg.NamespaceSize = 8 << 20
		cfg.Format = sim.FormatConfig{MetadataSize: 8, Extended: true, PIType: 1}
	})
	roundTrip(t, dev, c, target.QueueConfig{IOSize: 64 << 10, Protection: target.Protection{Check: allPI}}, "4096+8 extended PI 1")
	roundTrip(t, dev, c, target.QueueConfig{IOSize: 64 << 10, BufferOffset: 4, Protection: target.Protection{Action: true, Check: allPI}}, "4096+8 extended PI 1 PRACT=1, unaligned")
}

// rawExtendedWrite writes one 520-byte extended block with the given PI, asking the
// controller to check nothing, so that a bad tuple reaches the medium.
func rawExtendedWrite(t *testing.T, c *nvme.Controller, lba uint64, data []byte, pi spec.PI) {
	t.Helper()
	q, err := c.NewIOQPair(nvme.QPairOptions{Entries: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer c.FreeIOQPair(q)
	buf, err := allocator(t, c).Alloc(520)
	if err != nil {
		t.Fatal(err)
	}
	copy(buf.Bytes, data)
	spec.PutPI(buf.Bytes[512:], pi)
	var cmd spec.Command
	c.Namespace(1).WriteCommand(&cmd, lba, 1)
	if st := do(t, q, &cmd, bus.Buffer{Bytes: buf.Bytes, Addr: buf.Addr}); !st.OK() {
		t.Fatalf("raw write: %v", st)
	}
}

// TestCorruptedPIIsDetected: a block whose guard or reference tag does not match fails
// the read with the end-to-end status of that field.
func TestCorruptedPIIsDetected(t *testing.T) {
	dev, c := newSim(t, func(cfg *sim.Config) { cfg.Format = sim.FormatConfig{MetadataSize: 8, Extended: true, PIType: 1} })
	h := newCollector(dev)
	q := openTarget(t, c, target.QueueConfig{Depth: 1, IOSize: 4096, Handler: h, Protection: target.Protection{Check: allPI}})
	data := make([]byte, 512)
	verify.FillBlock(data, 10, 1)
	good := spec.PI{Guard: spec.CRC16T10DIF(0, data), AppTag: 0x6E70, RefTag: 10}
	for _, tc := range []struct {
		name string
		pi   spec.PI
		sc   uint8
	}{
		{"guard", spec.PI{Guard: good.Guard ^ 1, AppTag: good.AppTag, RefTag: 10}, spec.SCGuardCheckError},
		{"reference tag", spec.PI{Guard: good.Guard, AppTag: good.AppTag, RefTag: 11}, spec.SCReferenceTagError},
		{"application tag", spec.PI{Guard: good.Guard, AppTag: 0x1234, RefTag: 10}, spec.SCApplicationTagError},
	} {
		rawExtendedWrite(t, c, 10, data, tc.pi)
		r := &target.Request{Op: target.OpRead, Offset: 8 * 512, Length: 4096}
		if err := q.Submit(r); err != nil {
			t.Fatal(err)
		}
		waitAll(t, q, h, h.completed+1)
		var se *nvme.StatusError
		if !errors.As(r.Err, &se) || se.Status != spec.MakeStatus(spec.SCTMediaDataIntegrity, tc.sc) {
			t.Errorf("corrupted %s: read error %v, want end-to-end %s check error", tc.name, r.Err, tc.name)
		}
	}
	rawExtendedWrite(t, c, 10, data, good)
	r := &target.Request{Op: target.OpRead, Offset: 8 * 512, Length: 4096}
	if err := q.Submit(r); err != nil {
		t.Fatal(err)
	}
	waitAll(t, q, h, h.completed+1)
	if r.Err != nil {
		t.Errorf("good PI: %v", r.Err)
	}
}

// TestUnsupportedFormatRefused: a format nvmeperf cannot drive is refused when the
// queue is opened, with a message naming it.
func TestUnsupportedFormatRefused(t *testing.T) {
	_, c := newSim(t, func(cfg *sim.Config) { cfg.Format = sim.FormatConfig{MetadataSize: 6, Extended: true} })
	tg := nvme.NewTarget(c.Namespace(1), target.Info{}, nil)
	_, err := tg.OpenQueue(target.QueueConfig{Depth: 1, IOSize: 4096, Handler: newCollector(nil)})
	if err == nil || !strings.Contains(err.Error(), "512+6 extended LBA, no PI") || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("open on a 512+6 format: %v", err)
	}
	if c.Namespace(1).CheckFormat() == nil {
		t.Error("CheckFormat accepts 512+6")
	}
}
