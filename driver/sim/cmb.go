package sim

import (
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Controller memory buffer (Config.CMB, trid key cmb): memory on the controller that
// the host maps through a BAR and may put I/O submission queues in, so the controller
// fetches commands from its own memory instead of by DMA. The model follows QEMU's
// NVMe 1.4 scheme: CAP.CMBS is set, the CMB is BAR 2 at offset 0, CMBSZ offers SQS
// only (no completion queues, no data), and the controller takes a queue address to be
// in the CMB only while CMBMSC.CMSE is set and the address lies in [CBA, CBA+size).
// Unlike QEMU, CMBLOC and CMBSZ read as the CMB before CMBMSC.CRE is set: the device
// thread cannot act on a register write before the host's next read.
//
// Misuse is counted as ViolationCMB: a queue in the CMB's BAR while CMSE is clear, a
// queue that runs past the CMB's end, a completion queue in the CMB (CMBSZ.CQS is 0).
//
// Config.CMBLegacy (cmblegacy) publishes it the NVMe 1.3 way instead, as QEMU's
// legacy-cmb does: CAP.CMBS clear, CMBLOC and CMBSZ readable as they are, no CMBMSC
// (a host write there is a violation: the register does not exist), and the controller
// decodes the CMB at its BAR address from the start. The CMB starts cmbLegacyOffset
// into BAR 2 (CMBLOC.OFST 1), so a host that ignores OFST misplaces its queues.

// cmbBIR is the BAR the CMB is in, as on QEMU's controller.
const cmbBIR = 2

// cmbBusAddr is the simulated bus address of BAR 2: far above the DMA addresses
// (dmaBase upward), so that host memory and the CMB never overlap.
const cmbBusAddr = 0xE0_0000_0000

// cmbLegacyOffset is where the legacy CMB starts in BAR 2: one CMBSZ unit (4 KiB).
const cmbLegacyOffset = 4096

// cmbState is the controller memory buffer: off the Go heap, mapped for the life of
// the controller.
type cmbState struct {
	bar    []byte       // BAR 2
	mem    []byte       // the CMB: bar from its offset on
	legacy bool         // NVMe 1.3 scheme: decoded at cmbBusAddr+cmbLegacyOffset, no CMBMSC
	pin    atomic.Int32 // queues in the CMB (it is never freed by the host: nothing to refuse)
	sqs    atomic.Uint64
}

// initCMB maps the buffer and publishes it in CAP, CMBLOC and CMBSZ.
func (c *Controller) initCMB() error {
	if c.cfg.CMB == 0 {
		return nil
	}
	off := 0
	if c.cfg.CMBLegacy {
		off = cmbLegacyOffset
	}
	bar, err := unix.Mmap(-1, 0, off+int(c.cfg.CMB), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("sim: mapping the %d-byte controller memory buffer: %w", c.cfg.CMB, err)
	}
	c.cmb.bar, c.cmb.mem, c.cmb.legacy = bar, bar[off:], c.cfg.CMBLegacy
	if !c.cmb.legacy {
		capReg := spec.CAP(c.regs.Read64(spec.RegCAP)) | spec.CAPCMBS
		c.regs.Write64(spec.RegCAP, uint64(capReg))
	}
	c.regs.Write32(spec.RegCMBLOC, uint32(spec.MakeCMBLOC(cmbBIR, uint32(off/4096))))
	c.regs.Write32(spec.RegCMBSZ, uint32(spec.MakeCMBSZ(spec.CMBSZSQS, 0, uint32(c.cfg.CMB/4096))))
	return nil
}

// resetCMB is the CMB's part of a controller reset: CMBMSC goes back to zero, so the
// host must enable the memory space again before it creates queues in it. (QEMU keeps
// CMBMSC across CC.EN; clearing it is the stricter model, and it proves the host
// programs it again after a reset.)
func (c *Controller) resetCMB() {
	if c.cmb.mem != nil && !c.cmb.legacy {
		c.regs.Write64(spec.RegCMBMSC, 0)
	}
}

// releaseCMB unmaps the buffer; the device thread must be stopped.
func (c *Controller) releaseCMB() error {
	if c.cmb.mem == nil {
		return nil
	}
	err := unix.Munmap(c.cmb.bar)
	c.cmb.bar, c.cmb.mem = nil, nil
	if err != nil {
		return fmt.Errorf("sim: close: unmapping the controller memory buffer: %w", err)
	}
	return nil
}

// MapBAR maps BAR index of the simulated controller for the host: BAR 2 holds the
// controller memory buffer when Config.CMB is set (from offset 0, or 4 KiB in for
// CMBLegacy). The buffer's Addr is the BAR's simulated bus address, the value a host
// programs as CMBMSC.CBA. It implements bus.BARMapper; the mapping lives until Close.
func (c *Controller) MapBAR(index int) (bus.Buffer, error) {
	if index != cmbBIR || c.cmb.mem == nil {
		return bus.Buffer{}, fmt.Errorf("sim: BAR %d is not implemented (the simulated controller has BAR 0%s)", index, map[bool]string{true: " and BAR 2, its controller memory buffer", false: ""}[c.cmb.mem != nil])
	}
	return bus.Buffer{Bytes: c.cmb.bar, Addr: cmbBusAddr}, nil
}

// queueMemory finds the ring of a queue of n bytes at addr: in the CMB when the host
// enabled its memory space and addr is in it, else in host memory. A queue the CMB
// must not hold is a violation, answered with Invalid Use of Controller Memory Buffer;
// memory that is nowhere is Invalid Field. The admin queues take the same path.
func (c *Controller) queueMemory(addr, n uint64, sq bool, id uint16) ([]byte, *atomic.Int32, spec.Status) {
	if size := uint64(len(c.cmb.mem)); size > 0 {
		kind := "CQ"
		if sq {
			kind = "SQ"
		}
		// Where the controller decodes the CMB: from CMBMSC (NVMe 1.4), or at its BAR
		// address from the start (legacy).
		msc := spec.CMBMSC(c.regs.Read64(spec.RegCMBMSC))
		enabled, lo := msc.CMSE(), uint64(cmbBusAddr)
		switch {
		case c.cmb.legacy:
			enabled, lo = true, cmbBusAddr+cmbLegacyOffset
		case enabled:
			lo = msc.CBA()
		}
		overlaps := func(base uint64) bool { return addr < base+size && addr+n > base }
		switch {
		case enabled && addr >= lo && addr-lo < size:
			if n > size-(addr-lo) {
				c.violation(ViolationCMB, "%s %d at %#x (%d bytes) runs past the end of the %d-byte CMB at %#x", kind, id, addr, n, size, lo)
				return nil, nil, generic(spec.SCInvalidUseOfCMB)
			}
			if !sq {
				c.violation(ViolationCMB, "CQ %d at %#x is in the CMB, which CMBSZ.CQS does not allow", id, addr)
				return nil, nil, generic(spec.SCInvalidUseOfCMB)
			}
			off := addr - lo
			if id != 0 {
				c.cmb.sqs.Add(1)
			}
			return c.cmb.mem[off : off+n : off+n], &c.cmb.pin, spec.StatusSuccess
		case enabled && overlaps(lo):
			c.violation(ViolationCMB, "%s %d at %#x (%d bytes) starts before the CMB at %#x and runs into it", kind, id, addr, n, lo)
			return nil, nil, generic(spec.SCInvalidUseOfCMB)
		case c.cmb.legacy && overlaps(cmbBusAddr):
			c.violation(ViolationCMB, "%s %d at %#x is in BAR 2 before the CMB, which starts at offset %#x (CMBLOC.OFST)", kind, id, addr, cmbLegacyOffset)
			return nil, nil, generic(spec.SCInvalidUseOfCMB)
		case !enabled && overlaps(cmbBusAddr):
			c.violation(ViolationCMB, "%s %d at %#x is in the CMB's BAR but CMBMSC.CMSE is clear (the controller would not decode it)", kind, id, addr)
			return nil, nil, generic(spec.SCInvalidUseOfCMB)
		}
	}
	r, ok := c.dma.lookup(addr, n)
	if !ok {
		return nil, nil, generic(spec.SCInvalidField)
	}
	off := addr - r.addr
	return r.mem[off : off+n : off+n], r.queues, spec.StatusSuccess
}
