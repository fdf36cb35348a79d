//go:build race

package bus

import (
	"runtime"
	"unsafe"
)

// The assembly accesses are invisible to the race detector; these tell it that a
// register store releases and a load acquires the register's address, as sync/atomic
// would, so host and simulated device synchronize in its eyes as they do in hardware.

func raceRelease(p unsafe.Pointer) { runtime.RaceReleaseMerge(p) }
func raceAcquire(p unsafe.Pointer) { runtime.RaceAcquire(p) }
