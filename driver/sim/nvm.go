package sim

import (
	"encoding/binary"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// memPage is the NVMe memory page size the simulator runs with (CC.MPS = 0).
const memPage = 4096

// walkPRP resolves the n-byte data transfer of an admin command into c.segs; see
// walkPRPTo.
func (c *Controller) walkPRP(cmd *spec.Command, n uint64) spec.Status {
	return c.walkPRPTo(&c.segs, &c.adminCache, cmd, n)
}

// walkPRPTo resolves the n-byte data transfer of cmd into host memory segments in *segs,
// following the PRP rules for a 4 KiB memory page size:
//   - PRP1 may start anywhere dword aligned in its page;
//   - if the rest fits in one page, PRP2 is that page;
//   - otherwise PRP2 points at a PRP list (qword aligned, any offset) whose entries are
//     page addresses; when more entries are needed than fit in the rest of a list page,
//     its last entry points at the next list page.
//
// A misaligned pointer gives PRP Offset Invalid, an address outside host memory Data
// Transfer Error.
func (c *Controller) walkPRPTo(segs *[][]byte, cache *regionCache, cmd *spec.Command, n uint64) spec.Status {
	memPage := c.pageSize   // as CC.MPS selected
	pageMask := memPage - 1 // a power of two: masks, not divisions, on the I/O path
	*segs = (*segs)[:0]
	if n == 0 {
		return spec.StatusSuccess
	}
	if cmd.PSDT() != 0 {
		return generic(spec.SCInvalidField) // SGLs are not supported (SGLS = 0)
	}
	prp1 := cmd.PRP1
	if prp1%4 != 0 {
		return generic(spec.SCPRPOffsetInvalid)
	}
	first := min(n, memPage-prp1&pageMask)
	seg := c.dma.translateCached(cache, prp1, first)
	if seg == nil {
		return generic(spec.SCDataTransferError)
	}
	*segs = append(*segs, seg)
	left := n - first
	if left == 0 {
		return spec.StatusSuccess
	}
	if left <= memPage {
		return c.addPage(segs, cache, cmd.PRP2, left)
	}
	list := cmd.PRP2
	if list%8 != 0 {
		return generic(spec.SCPRPOffsetInvalid)
	}
	for left > 0 {
		// Entries from list to the end of its page.
		slots := (memPage - list&pageMask) / 8
		entries := c.dma.translateCached(cache, list, slots*8)
		if entries == nil {
			return generic(spec.SCDataTransferError)
		}
		for i := uint64(0); i < slots && left > 0; i++ {
			e := binary.LittleEndian.Uint64(entries[i*8:])
			if i == slots-1 && left > memPage {
				// Last slot of a list page with more than one page still to go: it
				// chains to the next list page.
				if e&pageMask != 0 {
					return generic(spec.SCPRPOffsetInvalid)
				}
				list = e
				break
			}
			take := min(left, memPage)
			if st := c.addPage(segs, cache, e, take); st != spec.StatusSuccess {
				return st
			}
			left -= take
		}
	}
	return spec.StatusSuccess
}

// addPage appends n bytes at page address addr, which must have no page offset.
func (c *Controller) addPage(segs *[][]byte, cache *regionCache, addr, n uint64) spec.Status {
	if addr&(c.pageSize-1) != 0 {
		return generic(spec.SCPRPOffsetInvalid)
	}
	seg := c.dma.translateCached(cache, addr, n)
	if seg == nil {
		return generic(spec.SCDataTransferError)
	}
	*segs = append(*segs, seg)
	return spec.StatusSuccess
}

// ioRange returns the LBA range of a read-like command with its CDW12 NLB field.
func ioRange(cmd *spec.Command) (slba, nlb uint64) { return cmd.SLBA(), uint64(cmd.NLB()) }

// io executes one NVM command set command.
func (c *Controller) io(sq *submissionQueue, cmd *spec.Command) {
	sq.counts.ios++
	op := spec.IOOpcode(cmd.Opcode())
	var st spec.Status
	var due int64
	// Every I/O command counts for FailNthIO, valid or not.
	armed := c.faults.armed.Load()
	if armed&(faultNth|faultLBA) != 0 {
		slba, nlb := ioRange(cmd)
		hasRange := op == spec.IORead || op == spec.IOWrite || op == spec.IOWriteZeroes
		if fst, hit := c.faults.ioFault(armed, cmd.NSID, slba, nlb, hasRange); hit {
			if fst == statusHang {
				c.hold(sq, cmd)
				return
			}
			fst = c.logInjected(sq, cmd, fst) // recovery.go
			c.complete(sq, cmd, fst, 0, c.delayed(armed, 0))
			return
		}
	}
	switch op {
	case spec.IORead, spec.IOWrite, spec.IOFlush, spec.IOWriteZeroes, spec.IODatasetManagement:
	default:
		c.complete(sq, cmd, generic(spec.SCInvalidOpcode), 0, 0)
		return
	}
	var ns *namespace
	if op == spec.IOFlush && cmd.NSID == 0xFFFFFFFF {
		// Flush of every namespace.
	} else if cmd.NSID == 0 || cmd.NSID > uint32(len(c.namespaces)) {
		c.complete(sq, cmd, generic(spec.SCInvalidNamespaceOrFormat), 0, 0)
		return
	} else {
		ns = c.namespaces[cmd.NSID-1]
	}

	switch op {
	case spec.IORead, spec.IOWrite:
		st, due = c.readWrite(sq, ns, cmd, op == spec.IOWrite)
	case spec.IOFlush:
		if c.nand != nil {
			due = c.nand.flush(c.now())
		}
	case spec.IOWriteZeroes:
		slba, nlb := ioRange(cmd)
		if !ns.inRange(slba, nlb) {
			st = generic(spec.SCLBAOutOfRange)
			break
		}
		if err := ns.zero(slba<<ns.lbaShift, nlb<<ns.lbaShift); err != nil {
			st = generic(spec.SCInternalError)
		}
		if c.nand != nil {
			due = c.nand.trim(c.now())
		}
	case spec.IODatasetManagement:
		st = c.datasetManagement(sq, ns, cmd)
		if c.nand != nil && st == spec.StatusSuccess {
			due = c.nand.trim(c.now())
		}
	}
	c.complete(sq, cmd, st, 0, c.delayed(armed, due))
}

// delayed adds the completion delay fault to due.
func (c *Controller) delayed(armed uint32, due int64) int64 {
	if armed&faultDelay == 0 {
		return due
	}
	if due == 0 {
		due = c.now()
	}
	return due + c.faults.delay.Load()
}

func (c *Controller) readWrite(sq *submissionQueue, ns *namespace, cmd *spec.Command, write bool) (spec.Status, int64) {
	if ns.ms > 0 {
		return c.readWriteMeta(sq, ns, cmd, write)
	}
	slba, nlb := ioRange(cmd)
	if !ns.inRange(slba, nlb) {
		return generic(spec.SCLBAOutOfRange), 0
	}
	n := nlb << ns.lbaShift
	if n > c.maxXfer {
		return generic(spec.SCInvalidField), 0
	}
	if ns.data == nil && c.nand == nil {
		// Nothing moves. A transfer that fits in PRP1's page gets the same checks
		// walkPRPTo makes, without building segments; longer ones walk their PRPs.
		if n <= c.pageSize-cmd.PRP1&(c.pageSize-1) && cmd.PSDT() == 0 {
			if cmd.PRP1%4 != 0 {
				return generic(spec.SCPRPOffsetInvalid), 0
			}
			if c.dma.translateCached(&sq.dmaCache, cmd.PRP1, n) == nil {
				return generic(spec.SCDataTransferError), 0
			}
			return c.account(sq, write, slba<<ns.lbaShift, n)
		}
	}
	if st := c.walkPRPTo(&sq.segs, &sq.dmaCache, cmd, n); st != spec.StatusSuccess {
		return st, 0
	}
	off := slba << ns.lbaShift
	if ns.data != nil {
		p := off
		if write {
			for _, seg := range sq.segs {
				p += uint64(copy(ns.data[p:], seg))
			}
			ns.markWritten(off, n)
		} else {
			for _, seg := range sq.segs {
				p += uint64(copy(seg, ns.data[p:]))
			}
		}
	}
	return c.account(sq, write, off, n)
}

// account counts a successful read or write of n data bytes at byte offset off and
// returns its completion time under the media model.
func (c *Controller) account(sq *submissionQueue, write bool, off, n uint64) (spec.Status, int64) {
	var due int64
	if write {
		sq.counts.writes++
		sq.counts.writeBytes += n
		if c.nand != nil {
			due = c.nand.write(c.now(), off, n)
		}
	} else {
		sq.counts.reads++
		sq.counts.readBytes += n
		if c.nand != nil {
			due = c.nand.read(c.now(), off, n)
		}
	}
	return spec.StatusSuccess, due
}

// datasetManagement handles Deallocate (CDW11 AD); other attributes are hints and are
// accepted without effect. CDW10 bits 7:0 are the number of ranges, 0's based.
func (c *Controller) datasetManagement(sq *submissionQueue, ns *namespace, cmd *spec.Command) spec.Status {
	nr := uint64(uint8(cmd.CDW10)) + 1
	if st := c.walkPRPTo(&sq.segs, &sq.dmaCache, cmd, nr*spec.DSMRangeSize); st != spec.StatusSuccess {
		return st
	}
	buf := sq.scratch[:0]
	for _, seg := range sq.segs {
		buf = append(buf, seg...)
	}
	// Check every range before changing anything.
	for i := uint64(0); i < nr; i++ {
		r := buf[i*spec.DSMRangeSize:]
		nlb := uint64(binary.LittleEndian.Uint32(r[4:]))
		slba := binary.LittleEndian.Uint64(r[8:])
		if nlb > 0 && !ns.inRange(slba, nlb) {
			return generic(spec.SCLBAOutOfRange)
		}
	}
	if cmd.CDW11&spec.DSMDeallocate == 0 {
		return spec.StatusSuccess
	}
	for i := uint64(0); i < nr; i++ {
		r := buf[i*spec.DSMRangeSize:]
		nlb := uint64(binary.LittleEndian.Uint32(r[4:]))
		slba := binary.LittleEndian.Uint64(r[8:])
		if nlb == 0 {
			continue
		}
		if err := ns.zero(slba<<ns.lbaShift, nlb<<ns.lbaShift); err != nil {
			return generic(spec.SCInternalError)
		}
	}
	return spec.StatusSuccess
}
