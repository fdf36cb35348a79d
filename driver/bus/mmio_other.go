//go:build !amd64 && !arm64

package bus

import "unsafe"

// Portable fallback for architectures without assembly here. The functions are not
// inlined, so the compiler keeps each access whole and in program order, but no
// hardware barrier is issued: on a weakly ordered CPU a doorbell could overtake the SQ
// entry it announces. Userspace PCIe is supported on amd64 and arm64 only; this keeps
// the package (and the simulator) building elsewhere.

//go:noinline
func store32(p *uint32, v uint32) { *p = v }

//go:noinline
func load32(p *uint32) uint32 { return *p }

//go:noinline
func copy64(dst, src *uint64, n int) {
	d := unsafe.Slice(dst, n)
	for i, v := range unsafe.Slice(src, n) {
		d[i] = v
	}
}
