//go:build !amd64

package uring

import "sync/atomic"

// storeRelease32 publishes a ring index to the kernel with release ordering; see
// release_amd64.go. Elsewhere sync/atomic's Store is the release store (STLR on arm64).
func storeRelease32(p *uint32, v uint32) { atomic.StoreUint32(p, v) }
