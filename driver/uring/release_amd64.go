package uring

import "github.com/nvmeperf/nvmeperf/driver/bus"

// storeRelease32 publishes a ring index to the kernel. amd64 is TSO: a plain MOV store
// is ordered after every earlier load and store, which is all a release needs, and
// costs a fraction of sync/atomic's Store (XCHG, a locked instruction) — this runs once
// per completion. bus.Store32 is that plain store, opaque to the compiler, and a
// release for the race detector.
func storeRelease32(p *uint32, v uint32) { bus.Store32(p, v) }
