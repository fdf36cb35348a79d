package bus

import (
	"sync/atomic"
	"unsafe"
)

// MMIO access primitives. A register or doorbell access is one plain load or store of
// the register's width: never a locked read-modify-write (sync/atomic's Store and Swap
// compile to XCHG on amd64, which a PCIe device sees as a read of a write-only register
// followed by a write, under a bus lock). The per-architecture assembly in
// mmio_amd64.s and mmio_arm64.s is the whole implementation; being assembly, the
// compiler can neither merge, split, drop nor move these accesses, and every memory
// access the caller made before the call is issued before it.
//
// Ordering, as the NVMe queue protocol needs it:
//   - Store32 (a doorbell, a register write) is ordered after every earlier store to
//     host memory (the SQ entry, PRP lists, data), so the device never fetches a
//     command older than the doorbell that announced it. amd64 is TSO: stores are not
//     reordered with older stores, and an uncached MMIO store waits for earlier
//     write-back stores to be globally visible, so a plain MOV suffices (Linux's writel
//     on x86 is the same MOV). arm64 issues DMB OSHST first (Linux's dma_wmb, which its
//     writel uses), ordering earlier stores to normal memory before the device store.
//   - Load32 (a register read) is followed on arm64 by DMB OSHLD, so host memory reads
//     after it (for example DMA data after reading CSTS) are not satisfied earlier.
//   - LoadAcquire32 reads a word the device writes by DMA to host memory (the CQE
//     dword holding the phase tag) so that no later load — the rest of the entry — is
//     satisfied before it. This is not MMIO, and a load-acquire is exactly what
//     sync/atomic's Load is: a plain MOV on amd64 (loads are not reordered with later
//     loads), LDARW on arm64; it is an inlined intrinsic, cheap enough for every
//     completion.
//
// Under the race detector each primitive also tells the detector that the store
// releases, or the load acquires, the word's address, so a simulated device in the
// same process synchronizes with the host as hardware would.

// Store32 writes v to the 32-bit register (or doorbell) at p with one plain store,
// after every earlier store to host memory.
func Store32(p *uint32, v uint32) {
	raceRelease(unsafe.Pointer(p))
	store32(p, v)
}

// Load32 reads the 32-bit register at p with one plain load.
func Load32(p *uint32) uint32 {
	v := load32(p)
	raceAcquire(unsafe.Pointer(p))
	return v
}

// LoadAcquire32 reads the 32-bit word at p, which a device writes by DMA, so that no
// later load is satisfied before it. It is for the completion entry's phase tag.
func LoadAcquire32(p *uint32) uint32 {
	return atomic.LoadUint32(p) // acquire for the race detector as well
}

// CopyToMMIO64 copies n 8-byte words from src to dst, where dst is device memory mapped
// from a BAR (a controller memory buffer): plain 8-byte loads and stores in ascending
// order, never byte-wise (a memmove may use byte, vector or REP MOVS stores, which
// device memory need not accept) and never a locked instruction. Both must be 8-byte
// aligned. Like Store32 it is assembly, so the stores are neither merged, split nor
// dropped; the doorbell store that follows (Store32) is ordered after them.
func CopyToMMIO64(dst, src *uint64, n int) {
	copy64(dst, src, n)
}
