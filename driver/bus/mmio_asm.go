//go:build amd64 || arm64

package bus

// Implemented in mmio_$GOARCH.s.

//go:noescape
func store32(p *uint32, v uint32)

//go:noescape
func load32(p *uint32) uint32

//go:noescape
func copy64(dst, src *uint64, n int)
