package nvme

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Namespace is an active namespace of a controller.
type Namespace struct {
	ctrl       *Controller
	id         uint32
	ident      spec.IdentifyNamespace
	sectorSize uint32
	metaSize   uint16
	sectors    uint64

	// From the NVM Command Set Identify Namespace, read on first use and only when
	// the controller has extended LBA formats (CTRATT.ELBAS).
	elbafOnce sync.Once
	pif, sts  uint8
}

func (ns *Namespace) fill() {
	ns.sectorSize = ns.ident.SectorSize()
	ns.metaSize = ns.ident.CurrentFormat().MS()
	ns.sectors = ns.ident.NSZE
}

// Format is a namespace's LBA format: data and metadata per block, where metadata
// travels, and its end-to-end protection information.
type Format struct {
	LBASize      uint32 // data bytes per logical block
	MetadataSize uint16 // metadata bytes per logical block; 0 = none
	Extended     bool   // metadata follows each block's data in the data buffer (FLBAS bit 4); else separate (MPTR)
	PIType       uint8  // protection information type: 0 none, 1 to 3 (DPS bits 2:0)
	PIFirst      bool   // PI is the first 8 bytes of metadata (DPS bit 3); else the last
	// PIFormat and StorageTagBits come from the extended LBA format (NVMe 2.0 ELBAF):
	// spec.PIF16Guard (the 8-byte tuple) and 0 unless the controller reports others.
	PIFormat       uint8
	StorageTagBits uint8
}

// String names the format, e.g. "512+8 extended LBA, PI type 1 (last 8 bytes)".
func (f Format) String() string {
	s := fmt.Sprintf("%d+%d", f.LBASize, f.MetadataSize)
	if f.MetadataSize == 0 {
		return s + ", no metadata"
	}
	if f.Extended {
		s += " extended LBA"
	} else {
		s += " separate metadata"
	}
	if f.PIType == 0 {
		return s + ", no PI"
	}
	where := "last"
	if f.PIFirst {
		where = "first"
	}
	s = fmt.Sprintf("%s, PI type %d (%s 8 bytes)", s, f.PIType, where)
	switch f.PIFormat {
	case spec.PIF16Guard:
	case spec.PIF32Guard:
		s += " with a 32-bit guard"
	case spec.PIF64Guard:
		s += " with a 64-bit guard"
	default:
		s += fmt.Sprintf(" with PI format %d", f.PIFormat)
	}
	if f.StorageTagBits != 0 {
		s += fmt.Sprintf(" and a %d-bit storage tag", f.StorageTagBits)
	}
	return s
}

// check says whether nvmeperf can drive the format, and why not.
func (f Format) check() error {
	switch {
	case f.LBASize < 512 || f.LBASize > 1<<16:
		return fmt.Errorf("a %d-byte logical block is outside 512 B to 64 KiB", f.LBASize)
	case f.MetadataSize%4 != 0:
		// Split commands start their data and MPTR at multiples of the block and
		// metadata size, which PRPs and MPTR need dword aligned.
		return fmt.Errorf("metadata of %d bytes is not a multiple of 4 (PRP and MPTR addresses must be dword aligned)", f.MetadataSize)
	case f.PIType > 3:
		return fmt.Errorf("protection information type %d is reserved", f.PIType)
	case f.PIType != 0 && f.MetadataSize < spec.PISize:
		return fmt.Errorf("protection information needs %d bytes of metadata, the format has %d", spec.PISize, f.MetadataSize)
	case f.PIType != 0 && (f.PIFormat != spec.PIF16Guard || f.StorageTagBits != 0):
		return fmt.Errorf("only the 8-byte protection information tuple (16-bit guard, no storage tag) is supported")
	}
	return nil
}

// Format is the namespace's LBA format.
func (ns *Namespace) Format() Format {
	f := Format{LBASize: ns.sectorSize, MetadataSize: ns.metaSize}
	if ns.metaSize > 0 {
		f.Extended = ns.ident.ExtendedMetadata()
		f.PIType = ns.ident.DPS & spec.DPSTypeMask
		f.PIFirst = f.PIType != 0 && ns.ident.DPS&spec.DPSFirst != 0
		if f.PIType != 0 {
			ns.elbafOnce.Do(ns.readELBAF)
			f.PIFormat, f.StorageTagBits = ns.pif, ns.sts
		}
	}
	return f
}

// readELBAF reads the current format's PI format and storage tag size when the
// controller has extended LBA formats. A controller that fails the Identify is taken
// at its word that only the 16-bit guard exists.
func (ns *Namespace) readELBAF() {
	if ns.ctrl.ident.CTRATT&spec.CTRATTExtendedLBAFormats == 0 {
		return
	}
	var nvm spec.NVMIdentifyNamespace
	if err := ns.ctrl.identifyInto(spec.CNSNVMNamespace, ns.id, unsafe.Pointer(&nvm)); err != nil {
		return
	}
	e := nvm.ELBAF[ns.ident.FormatIndex()]
	ns.pif, ns.sts = spec.ELBAFPIFormat(e), spec.ELBAFStorageTagSize(e)
}

// CheckFormat returns an error naming the format when nvmeperf cannot drive it.
func (ns *Namespace) CheckFormat() error {
	f := ns.Format()
	if err := f.check(); err != nil {
		return fmt.Errorf("nvme: NSID %d format %s is not supported: %v", ns.id, f, err)
	}
	return nil
}

// ID is the namespace identifier.
func (ns *Namespace) ID() uint32 { return ns.id }

// SectorSize is the logical block size in bytes.
func (ns *Namespace) SectorSize() uint32 { return ns.sectorSize }

// MetadataSize is the metadata bytes per logical block (0 for most namespaces).
func (ns *Namespace) MetadataSize() uint16 { return ns.metaSize }

// Sectors is the namespace size in logical blocks (NSZE).
func (ns *Namespace) Sectors() uint64 { return ns.sectors }

// Capacity is the namespace size in bytes.
func (ns *Namespace) Capacity() uint64 { return ns.sectors * uint64(ns.sectorSize) }

// Identify is the namespace's Identify data.
func (ns *Namespace) Identify() *spec.IdentifyNamespace { return &ns.ident }

// Controller is the controller the namespace belongs to.
func (ns *Namespace) Controller() *Controller { return ns.ctrl }

// SupportsWriteZeroes and SupportsDeallocate report the optional commands (ONCS).
func (ns *Namespace) SupportsWriteZeroes() bool {
	return ns.ctrl.ident.ONCS&spec.ONCSWriteZeroes != 0
}

// SupportsDeallocate reports Dataset Management support (ONCS).
func (ns *Namespace) SupportsDeallocate() bool {
	return ns.ctrl.ident.ONCS&spec.ONCSDatasetManagement != 0
}

// I/O command builders. They fill cmd for this namespace; QPair.Submit adds the
// command identifier and PRPs.

// ReadCommand builds an NVM Read of nlb blocks at slba.
func (ns *Namespace) ReadCommand(cmd *spec.Command, slba uint64, nlb uint32) {
	ns.rw(cmd, spec.IORead, slba, nlb)
}

// WriteCommand builds an NVM Write of nlb blocks at slba.
func (ns *Namespace) WriteCommand(cmd *spec.Command, slba uint64, nlb uint32) {
	ns.rw(cmd, spec.IOWrite, slba, nlb)
}

func (ns *Namespace) rw(cmd *spec.Command, opc spec.IOOpcode, slba uint64, nlb uint32) {
	*cmd = spec.Command{NSID: ns.id}
	cmd.SetOpcodeCID(uint8(opc), 0)
	cmd.SetLBARange(slba, nlb)
}

// WriteZeroesCommand builds Write Zeroes of nlb blocks at slba, optionally asking the
// controller to deallocate them.
func (ns *Namespace) WriteZeroesCommand(cmd *spec.Command, slba uint64, nlb uint32, deallocate bool) {
	ns.rw(cmd, spec.IOWriteZeroes, slba, nlb)
	if deallocate {
		cmd.CDW12 |= spec.WriteZeroesDeallocate
	}
}

// FlushCommand builds a Flush of the namespace's volatile write cache.
func (ns *Namespace) FlushCommand(cmd *spec.Command) {
	*cmd = spec.Command{NSID: ns.id}
	cmd.SetOpcodeCID(uint8(spec.IOFlush), 0)
}

// DeallocateCommand builds a Dataset Management deallocate over the ranges already
// written into rangesBuf (see PutDSMRanges); n is the number of ranges (1..256).
func (ns *Namespace) DeallocateCommand(cmd *spec.Command, n int) error {
	if n < 1 || n > 256 {
		return fmt.Errorf("nvme: dataset management takes 1 to 256 ranges, got %d", n)
	}
	*cmd = spec.Command{NSID: ns.id, CDW10: uint32(n - 1), CDW11: spec.DSMDeallocate}
	cmd.SetOpcodeCID(uint8(spec.IODatasetManagement), 0)
	return nil
}

// PutDSMRanges writes ranges into buf (DMA memory) in the spec's layout and returns the
// part of buf to pass as the command's data.
func PutDSMRanges(buf bus.Buffer, ranges []spec.DSMRange) (bus.Buffer, error) {
	need := len(ranges) * spec.DSMRangeSize
	if need > buf.Len() {
		return bus.Buffer{}, fmt.Errorf("nvme: %d ranges need %d bytes, buffer has %d", len(ranges), need, buf.Len())
	}
	copy(buf.Bytes, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(ranges))), need))
	return buf.Slice(0, need), nil
}

// SMART reads the SMART / Health Information log page (controller-wide).
func (c *Controller) SMART() (spec.SMARTLog, error) {
	var log spec.SMARTLog
	numd := uint32(spec.SMARTLogSize/4 - 1)
	cmd := spec.Command{NSID: 0xFFFFFFFF, CDW10: spec.LogSMARTHealth | (numd&0xFFFF)<<16, CDW11: numd >> 16}
	cmd.SetOpcodeCID(uint8(spec.AdminGetLogPage), 0)
	c.adminMu.Lock()
	defer c.adminMu.Unlock()
	clear(c.scratch.Bytes)
	if _, err := c.adminLocked(&cmd, c.scratch.Slice(0, spec.SMARTLogSize)); err != nil {
		return log, fmt.Errorf("nvme: reading the SMART log: %w", err)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&log)), spec.SMARTLogSize), c.scratch.Bytes)
	return log, nil
}
