package pcie

import (
	"bytes"
	"os"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// TestGuestController runs only in the QEMU lab (scripts/vmtest.sh), against a real
// controller bound to vfio-pci or uio_pci_generic: PCIE_GUEST_ADDR names it and
// PCIE_GUEST_SERIAL is the serial QEMU gave it. With a minimal admin and I/O queue of its
// own it proves that BAR0 is mapped and that DMA through this package's allocator
// reaches the device both ways, independently of the driver core.
func TestGuestController(t *testing.T) {
	addr := os.Getenv("PCIE_GUEST_ADDR")
	if addr == "" {
		t.Skip("PCIE_GUEST_ADDR not set: runs in the QEMU lab only")
	}
	ctrls, err := Probe()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range ctrls {
		t.Logf("probe: %+v", c)
		if c.Address == addr {
			found = c.Userspace()
		}
	}
	if !found {
		t.Fatalf("Probe did not list %s as userspace-bound", addr)
	}

	d, err := Open(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	}()
	if _, err := Open(addr); err == nil {
		t.Error("a second Open of the same controller succeeded")
	}
	r := d.Registers()
	caps := spec.CAP(r.Read64(spec.RegCAP))
	t.Logf("driver %s: BAR0 %d bytes, CAP %v MQES %d (%d entries) DSTRD %d TO %d, VS %v",
		d.Controller().Driver, r.Size(), caps, caps.MQES(), int(caps.MQES())+1, caps.DSTRD(), caps.TO(), spec.VS(r.Read32(spec.RegVS)))

	q := newGuestAdmin(t, d)
	defer q.disable()

	id := q.alloc(spec.IdentifyDataSize)
	q.admin(spec.Command{CDW10: spec.CNSController}, spec.AdminIdentify, id)
	ic := (*spec.IdentifyController)(unsafe.Pointer(&id.Bytes[0]))
	if want := os.Getenv("PCIE_GUEST_SERIAL"); ic.Serial() != want {
		t.Fatalf("Identify serial %q, want %q", ic.Serial(), want)
	}
	mpsmin := uint32(bus.PageSize) << caps.MPSMIN()
	t.Logf("identify: model %q serial %q fw %q MDTS %d (%d bytes) NN %d", ic.Model(), ic.Serial(), ic.Firmware(), ic.MDTS, ic.MaxTransferBytes(mpsmin), ic.NN)

	cqe := q.admin(spec.Command{CDW10: spec.FeatureNumberOfQueues, CDW11: spec.NumberOfQueues(64, 64)}, spec.AdminSetFeatures, bus.Buffer{})
	nsq, ncq := spec.DecodeNumberOfQueues(cqe.DW0)
	t.Logf("number of queues: %d SQ, %d CQ granted", nsq, ncq)

	ns := q.alloc(spec.IdentifyDataSize)
	q.admin(spec.Command{NSID: 1, CDW10: spec.CNSNamespace}, spec.AdminIdentify, ns)
	in := (*spec.IdentifyNamespace)(unsafe.Pointer(&ns.Bytes[0]))
	lba := in.SectorSize()
	t.Logf("namespace 1: %d blocks of %d bytes", in.NSZE, lba)

	// One I/O queue pair; write a pattern with a two-page PRP, read it back.
	cq, sq := q.alloc(bus.PageSize), q.alloc(bus.PageSize)
	q.admin(spec.Command{PRP1: cq.Addr, CDW10: 1 | (16-1)<<16, CDW11: spec.QueuePhysicallyContiguous}, spec.AdminCreateIOCQ, bus.Buffer{})
	q.admin(spec.Command{PRP1: sq.Addr, CDW10: 1 | (16-1)<<16, CDW11: spec.QueuePhysicallyContiguous | 1<<16}, spec.AdminCreateIOSQ, bus.Buffer{})
	io := &guestQueue{t: t, r: r, sq: sq, cq: cq, size: 16, qid: 1, dstrd: caps.DSTRD(), phase: true}
	out, in2 := q.alloc(2*bus.PageSize), q.alloc(2*bus.PageSize)
	for i := range out.Bytes {
		out.Bytes[i] = byte(i*7 + i>>8)
	}
	nlb := uint32(len(out.Bytes)) / lba
	w := spec.Command{NSID: 1, PRP1: out.Addr, PRP2: out.Addr + bus.PageSize}
	w.SetLBARange(8, nlb)
	w.CDW0 = uint32(spec.IOWrite)
	io.submit(w)
	rd := spec.Command{NSID: 1, PRP1: in2.Addr, PRP2: in2.Addr + bus.PageSize}
	rd.SetLBARange(8, nlb)
	rd.CDW0 = uint32(spec.IORead)
	io.submit(rd)
	if !bytes.Equal(out.Bytes, in2.Bytes) {
		t.Fatal("data read back through DMA differs from what was written")
	}
	t.Logf("I/O queue 1: wrote and read back %d bytes at LBA 8 through DMA", len(out.Bytes))

	// A buffer larger than a hugepage: one range of device addresses (physically
	// contiguous under UIO, inside the IOMMU's IOVA ranges under VFIO). DMA across its
	// hugepage boundaries lands where the CPU sees it.
	big := q.alloc(5 << 20)
	checkDeviceRange(t, d, big)
	src := big.Slice(HugePageSize-bus.PageSize, 2*bus.PageSize)
	dst := big.Slice(2*HugePageSize-bus.PageSize, 2*bus.PageSize)
	for i := range src.Bytes {
		src.Bytes[i] = byte(i*13 + i>>9 + 1)
	}
	w = spec.Command{NSID: 1, PRP1: src.Addr, PRP2: src.Addr + bus.PageSize}
	w.SetLBARange(64, nlb)
	w.CDW0 = uint32(spec.IOWrite)
	io.submit(w)
	rd = spec.Command{NSID: 1, PRP1: dst.Addr, PRP2: dst.Addr + bus.PageSize}
	rd.SetLBARange(64, nlb)
	rd.CDW0 = uint32(spec.IORead)
	io.submit(rd)
	if !bytes.Equal(src.Bytes, dst.Bytes) {
		t.Fatal("data DMA-ed across hugepage boundaries of a 5 MiB buffer differs")
	}
	t.Logf("5 MiB buffer at device address %#x: DMA across its hugepage boundaries reads back", big.Addr)
	q.admin(spec.Command{CDW10: 1}, spec.AdminDeleteIOSQ, bus.Buffer{})
	q.admin(spec.Command{CDW10: 1}, spec.AdminDeleteIOCQ, bus.Buffer{})
}

// guestQueue is the least queue that can talk to a controller: one command at a time.
type guestQueue struct {
	t      *testing.T
	r      *bus.MMIO
	sq, cq bus.Buffer
	size   uint16
	qid    uint16
	dstrd  uint8
	tail   uint16
	head   uint16
	phase  bool
	cid    uint16
}

func (g *guestQueue) submit(c spec.Command) spec.Completion {
	g.t.Helper()
	g.cid++
	c.SetCID(g.cid)
	*(*spec.Command)(unsafe.Pointer(&g.sq.Bytes[int(g.tail)*spec.SQESize])) = c
	g.tail = (g.tail + 1) % g.size
	g.r.Write32(spec.SQTailDoorbell(g.qid, g.dstrd), uint32(g.tail))
	slot := g.cq.Bytes[int(g.head)*spec.CQESize:]
	status := (*uint32)(unsafe.Pointer(&slot[12])) // CID and status, with the phase bit
	deadline := time.Now().Add(10 * time.Second)
	for (atomic.LoadUint32(status)>>16&1 == 1) != g.phase {
		if time.Now().After(deadline) {
			g.t.Fatalf("queue %d: no completion for command %#x in 10 s (CSTS %v)", g.qid, c.Opcode(), spec.CSTS(g.r.Read32(spec.RegCSTS)))
		}
		time.Sleep(50 * time.Microsecond)
	}
	cqe := *(*spec.Completion)(unsafe.Pointer(&slot[0]))
	g.head++
	if g.head == g.size {
		g.head, g.phase = 0, !g.phase
	}
	g.r.Write32(spec.CQHeadDoorbell(g.qid, g.dstrd), uint32(g.head))
	if cqe.CID != g.cid || !cqe.StatusField().OK() {
		g.t.Fatalf("queue %d: command %#x CID %d completed with CID %d status %v", g.qid, c.Opcode(), g.cid, cqe.CID, cqe.StatusField())
	}
	return cqe
}

type guestAdmin struct {
	guestQueue
	d *Device
}

func newGuestAdmin(t *testing.T, d *Device) *guestAdmin {
	r := d.Registers()
	g := &guestAdmin{d: d}
	g.guestQueue = guestQueue{t: t, r: r, size: 32, dstrd: spec.CAP(r.Read64(spec.RegCAP)).DSTRD(), phase: true}
	g.disable()
	g.sq, g.cq = g.alloc(bus.PageSize), g.alloc(bus.PageSize)
	r.Write32(spec.RegAQA, uint32(spec.MakeAQA(g.size, g.size)))
	r.Write64(spec.RegASQ, g.sq.Addr)
	r.Write64(spec.RegACQ, g.cq.Addr)
	r.Write32(spec.RegCC, uint32(spec.MakeCC(true, 0, 0, 0, spec.SQESizeLog, spec.CQESizeLog)))
	g.waitReady(true)
	return g
}

func (g *guestAdmin) alloc(n int) bus.Buffer {
	b, err := g.d.Allocator().Alloc(n)
	if err != nil {
		g.t.Fatal(err)
	}
	return b
}

func (g *guestAdmin) admin(c spec.Command, op spec.AdminOpcode, data bus.Buffer) spec.Completion {
	g.t.Helper()
	c.CDW0 = uint32(op)
	if data.Len() > 0 {
		c.PRP1 = data.Addr
	}
	return g.submit(c)
}

func (g *guestAdmin) disable() {
	g.r.Write32(spec.RegCC, 0)
	g.waitReady(false)
}

func (g *guestAdmin) waitReady(want bool) {
	deadline := time.Now().Add(10 * time.Second)
	for spec.CSTS(g.r.Read32(spec.RegCSTS)).RDY() != want {
		if time.Now().After(deadline) {
			g.t.Fatalf("CSTS.RDY did not become %v in 10 s (CSTS %v)", want, spec.CSTS(g.r.Read32(spec.RegCSTS)))
		}
		time.Sleep(time.Millisecond)
	}
}

// checkDeviceRange checks that b's device addresses are what the device can reach: under
// UIO every 4 KiB page at its physical address, under VFIO inside one IOVA range.
func checkDeviceRange(t *testing.T, d *Device, b bus.Buffer) {
	t.Helper()
	t.Logf("DMA memory: hugepage sizes %v", d.dma.sizes)
	switch m := d.dma.m.(type) {
	case *vfioMapper:
		t.Logf("IOVA ranges: %s", rangesString(m.iova.ranges))
		for _, r := range m.iova.ranges {
			if b.Addr >= r.start && b.Addr+uint64(b.Len())-1 <= r.end {
				return
			}
		}
		t.Fatalf("%d-byte buffer at IOVA %#x is outside the IOMMU's ranges %s", b.Len(), b.Addr, rangesString(m.iova.ranges))
	case uioMapper:
		for off := 0; off < b.Len(); off += bus.PageSize {
			got, err := m.physAddr(b.Bytes[off:])
			if err != nil {
				t.Fatal(err)
			}
			if got != b.Addr+uint64(off) {
				t.Fatalf("page at offset %#x of a %d-byte buffer is at physical %#x, want %#x", off, b.Len(), got, b.Addr+uint64(off))
			}
		}
		t.Logf("%d-byte buffer physically contiguous at %#x", b.Len(), b.Addr)
	default:
		t.Fatalf("unexpected mapper %T", m)
	}
}
