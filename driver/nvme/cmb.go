package nvme

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Submission queues in the controller memory buffer (CMB; NVMe Base 2.0, section 8.2.1).
// A controller whose CMBSZ sets SQS lets the host put I/O submission queues in memory
// on the controller, mapped through one of its BARs (CMBLOC.BIR). The host writes each
// command there with MMIO stores and the controller fetches it without a DMA read of
// host memory, which is why SPDK's driver uses it by default; Options.NoSQInCMB (-D)
// keeps the queues in host memory.
//
// Two ways to turn it on, by CAP.CMBS:
//   - NVMe 1.4 and later (CAP.CMBS=1): CMBLOC and CMBSZ read as zero until the host
//     sets CMBMSC.CRE; the controller decodes queue addresses in the CMB only once the
//     host writes CMBMSC with CMSE and the Controller Base Address (CBA), and only in
//     [CBA, CBA+size). nvmeperf programs CBA as the BAR's PCI bus address, as Linux
//     does, and writes the high dword first: a controller that acts on the low dword
//     (QEMU does) then sees the whole address.
//   - Earlier controllers (CAP.CMBS=0): CMBLOC and CMBSZ are readable as they are and
//     the CMB sits at the BAR's bus address.
// Either way a queue's base address is the BAR's bus address plus its offset in the BAR.
// Queues are carved out page-aligned; a queue that does not fit stays in host memory
// and its reason is kept (QPair.CMBFallback). A reset may forget CMBMSC, so recovery
// programs it again before the queues are re-created.

// cmbState is the controller's CMB: its mapping and the free spans of it.
type cmbState struct {
	on     bool       // I/O SQs go to the CMB when they fit
	win    bus.Buffer // the CMB: host mapping (MMIO), address the controller decodes
	msc    spec.CMBMSC
	sz     spec.CMBSZ
	loc    spec.CMBLOC
	reason string // why SQs are not in the CMB, when on is false

	mu   sync.Mutex
	free []cmbSpan // sorted by offset, coalesced
}

type cmbSpan struct{ off, n int }

// CMBInfo describes a controller's memory buffer as nvmeperf uses it (reports,
// `nvmeperf list`): what CMBLOC and CMBSZ say, and whether the I/O SQs go there.
type CMBInfo struct {
	Size     uint64      `json:"size_bytes"`                 // bytes; 0 when the controller has none (or it was not read)
	CMBSZ    spec.CMBSZ  `json:"-"`                          // as read
	CMBLOC   spec.CMBLOC `json:"-"`                          // as read
	BAR      uint8       `json:"bar"`                        // CMBLOC.BIR: the BAR the buffer is in
	Offset   uint64      `json:"offset_bytes"`               // where in that BAR it starts (CMBLOC.OFST in bytes)
	Supports CMBSupport  `json:"supports"`                   // what CMBSZ lets the host put there
	SQs      bool        `json:"sq_in_cmb"`                  // I/O submission queues are placed in it
	Reason   string      `json:"sq_in_cmb_reason,omitempty"` // why not, when SQs is false
}

// CMBSupport is what CMBSZ allows in the controller memory buffer.
type CMBSupport struct {
	SQS   bool `json:"sqs"`   // I/O submission queues
	CQS   bool `json:"cqs"`   // I/O completion queues
	LISTS bool `json:"lists"` // PRP lists and SGL segments
	RDS   bool `json:"rds"`   // data of commands that read (controller to host)
	WDS   bool `json:"wds"`   // data of commands that write (host to controller)
}

// noCMBReason is setupCMB's reason when CMBSZ describes no buffer.
const noCMBReason = "the controller has no controller memory buffer"

// CMB reports the controller memory buffer and whether the I/O SQs use it.
func (c *Controller) CMB() CMBInfo {
	sz, loc := c.cmb.sz, c.cmb.loc
	info := CMBInfo{Size: sz.Size(), CMBSZ: sz, CMBLOC: loc, SQs: c.cmb.on, Reason: c.cmb.reason}
	if info.Size != 0 {
		info.BAR, info.Offset = loc.BIR(), loc.Offset(sz)
		info.Supports = CMBSupport{SQS: sz.SQS(), CQS: sz.CQS(), LISTS: sz.LISTS(), RDS: sz.RDS(), WDS: sz.WDS()}
	}
	return info
}

// String is one line for people: "none", or the size, where it is, what it may hold
// and where the I/O SQs go.
func (i CMBInfo) String() string {
	if i.Size == 0 {
		if i.Reason == "" || i.Reason == noCMBReason {
			return "none"
		}
		return "not read: " + i.Reason
	}
	s := fmt.Sprintf("%s in BAR %d at offset %#x, supports %v; I/O SQs ", exactBytes(i.Size), i.BAR, i.Offset, i.Supports)
	if i.SQs {
		return s + "in the CMB"
	}
	return s + "in host memory: " + i.Reason
}

// String lists the supported uses by their CMBSZ names, "nothing" when none is.
func (s CMBSupport) String() string {
	var out []string
	for _, b := range []struct {
		on   bool
		name string
	}{{s.SQS, "SQS"}, {s.CQS, "CQS"}, {s.LISTS, "LISTS"}, {s.RDS, "RDS"}, {s.WDS, "WDS"}} {
		if b.on {
			out = append(out, b.name)
		}
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, " ")
}

// exactBytes writes n in the largest binary unit that divides it, with the byte count:
// "16 MiB (16777216 bytes)".
func exactBytes(n uint64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v, i := n, 0
	for i < len(units)-1 && v >= 1024 && v%1024 == 0 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%d %s (%d bytes)", v, units[i], n)
}

// setupCMB looks for a CMB that can hold submission queues, maps it and enables it.
// It runs with the controller disabled, before the admin queue is set up; nothing it
// finds fails the bring-up: the queues then stay in host memory, with the reason kept.
func (c *Controller) setupCMB() {
	c.cmb = cmbState{}
	if c.fabric != nil {
		return
	}
	if c.opts.NoSQInCMB {
		c.cmb.reason = "disabled (-D / --no-sq-cmb)"
		return
	}
	if c.cap.CMBS() {
		// NVMe 1.4: make CMBLOC and CMBSZ readable first.
		c.regs.Write32(spec.RegCMBMSC, uint32(spec.CMBMSCCRE))
	}
	c.cmb.sz = spec.CMBSZ(c.regs.Read32(spec.RegCMBSZ))
	loc := spec.CMBLOC(c.regs.Read32(spec.RegCMBLOC))
	c.cmb.loc = loc
	switch {
	case c.cmb.sz.Size() == 0:
		c.cmb.reason = noCMBReason
		return
	case !c.cmb.sz.SQS():
		c.cmb.reason = fmt.Sprintf("the controller memory buffer cannot hold submission queues (%v)", c.cmb.sz)
		return
	}
	mapper := c.opts.BARs
	if mapper == nil {
		if m, ok := c.regs.(bus.BARMapper); ok {
			mapper = m
		} else if m, ok := c.dma.(bus.BARMapper); ok {
			mapper = m
		}
	}
	if mapper == nil {
		c.cmb.reason = "the transport cannot map the controller memory buffer's BAR"
		return
	}
	bar, err := mapper.MapBAR(int(loc.BIR()))
	if err != nil {
		c.cmb.reason = fmt.Sprintf("mapping BAR %d: %v", loc.BIR(), err)
		return
	}
	off, size := loc.Offset(c.cmb.sz), c.cmb.sz.Size()
	if off > uint64(bar.Len()) || size > uint64(bar.Len())-off {
		c.cmb.reason = fmt.Sprintf("CMBLOC/CMBSZ place the buffer at offset %#x, %d bytes, beyond BAR %d's %d bytes", off, size, loc.BIR(), bar.Len())
		return
	}
	win := bar.Slice(int(off), int(size))
	if uintptr(unsafe.Pointer(unsafe.SliceData(win.Bytes)))%8 != 0 {
		c.cmb.reason = "the controller memory buffer's mapping is not aligned"
		return
	}
	c.cmb.win = win
	if c.cap.CMBS() {
		c.cmb.msc = spec.MakeCMBMSC(win.Addr)
	}
	if err := c.programCMB(); err != nil {
		c.cmb.reason = err.Error()
		c.cmb.win = bus.Buffer{}
		return
	}
	// Whole memory pages only: a queue's base must be page aligned in the controller's
	// address space.
	first := int((uint64(c.pageSize) - win.Addr%uint64(c.pageSize)) % uint64(c.pageSize))
	if n := (win.Len() - first) &^ (c.pageSize - 1); n > 0 {
		c.cmb.free = []cmbSpan{{off: first, n: n}}
	}
	c.cmb.on = true
}

// programCMB enables the CMB's memory space (NVMe 1.4 scheme) with the controller base
// address; controllers without CAP.CMBS need nothing. Recovery calls it after a reset.
func (c *Controller) programCMB() error {
	if c.cmb.msc == 0 {
		return nil
	}
	// High dword first: the enable bits are in the low one.
	c.regs.Write32(spec.RegCMBMSC+4, uint32(uint64(c.cmb.msc)>>32))
	c.regs.Write32(spec.RegCMBMSC, uint32(c.cmb.msc))
	if st := spec.CMBSTS(c.regs.Read32(spec.RegCMBSTS)); st.CBAI() {
		return fmt.Errorf("the controller refused controller base address %#x (CMBSTS.CBAI)", c.cmb.msc.CBA())
	}
	return nil
}

// errCMBFull is why a queue stayed in host memory when the CMB had no room left.
var errCMBFull = errors.New("no room left in the controller memory buffer")

// cmbAlloc carves size bytes (whole memory pages) out of the CMB, first fit.
func (c *Controller) cmbAlloc(size int) (bus.Buffer, error) {
	n := (size + c.pageSize - 1) &^ (c.pageSize - 1)
	c.cmb.mu.Lock()
	defer c.cmb.mu.Unlock()
	for i, s := range c.cmb.free {
		if s.n < n {
			continue
		}
		if s.n == n {
			c.cmb.free = append(c.cmb.free[:i], c.cmb.free[i+1:]...)
		} else {
			c.cmb.free[i] = cmbSpan{off: s.off + n, n: s.n - n}
		}
		return c.cmb.win.Slice(s.off, size), nil
	}
	return bus.Buffer{}, fmt.Errorf("%w (%d bytes wanted)", errCMBFull, n)
}

// cmbFree returns a queue's span. A queue the controller may still fetch from (it
// could not be deleted) keeps its span until the controller is detached.
func (c *Controller) cmbFree(b bus.Buffer, deviceMayUse bool) {
	if b.Len() == 0 || deviceMayUse {
		return
	}
	off := int(b.Addr - c.cmb.win.Addr)
	n := (b.Len() + c.pageSize - 1) &^ (c.pageSize - 1)
	c.cmb.mu.Lock()
	defer c.cmb.mu.Unlock()
	f := append(c.cmb.free, cmbSpan{off: off, n: n})
	sort.Slice(f, func(i, j int) bool { return f[i].off < f[j].off })
	out := f[:1]
	for _, s := range f[1:] {
		if last := &out[len(out)-1]; last.off+last.n == s.off {
			last.n += s.n
		} else {
			out = append(out, s)
		}
	}
	c.cmb.free = out
}

// allocSQ places an I/O queue pair's SQ in the CMB when the controller uses it for
// SQs and it fits, else in host memory (the reason kept in cmbFallback).
func (q *QPair) allocSQ(size int) (bus.Buffer, error) {
	c := q.ctrl
	if q.id != 0 && c.cmb.on {
		b, err := c.cmbAlloc(size)
		if err == nil {
			q.sqInCMB = true
			return b, nil
		}
		q.cmbFallback = err.Error()
	}
	return q.alloc(size)
}

// freeSQ gives a CMB SQ's span back; host memory SQs are in q.raw.
func (q *QPair) freeSQ(deviceMayUse bool) {
	if q.sqInCMB {
		q.ctrl.cmbFree(q.sqMem, deviceMayUse)
		q.sqInCMB = false
	}
}

// SQInCMB reports whether the queue pair's SQ lives in the controller memory buffer.
func (q *QPair) SQInCMB() bool { return q.sqInCMB }

// CMBFallback is why the SQ is in host memory although the controller's CMB holds SQs;
// "" when it is in the CMB or the CMB is not in use.
func (q *QPair) CMBFallback() string { return q.cmbFallback }

// placeCMB writes a command into an SQ slot in the CMB: device memory, written with
// plain 8-byte stores (bus.CopyToMMIO64), never a memmove that may store bytes.
func (q *QPair) placeCMB(r *request) {
	bus.CopyToMMIO64((*uint64)(unsafe.Pointer(&q.sq[q.sqTail])), (*uint64)(unsafe.Pointer(&r.cmd)), spec.SQESize/8)
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
