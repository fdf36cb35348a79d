package sim

import (
	"runtime"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// hotLoop runs n commands through q keeping up to depth in flight, with a host side that
// allocates nothing, and returns how many completed with an error.
func hotLoop(q *hostQueue, cmds []spec.Command, n, depth int) int {
	inflight, submitted, completed, errs := 0, 0, 0, 0
	for completed < n {
		for inflight < depth && submitted < n {
			q.put(&cmds[submitted%len(cmds)])
			submitted++
			inflight++
		}
		q.ring()
		for reaped := 0; ; reaped++ {
			cqe, ok := q.reap(true)
			if !ok {
				if reaped == 0 {
					// Let the device goroutine run: AllocsPerRun sets GOMAXPROCS to 1.
					runtime.Gosched()
				}
				break
			}
			if cqe.Status>>1 != 0 {
				errs++
			}
			inflight--
			completed++
		}
	}
	return errs
}

// The device's I/O path (fetch, PRP walk, data copy, completion, nand timing) allocates
// nothing.
func TestIOPathAllocatesNothing(t *testing.T) {
	for _, model := range []Model{ModelNull, ModelNAND} {
		cfg := testConfig()
		cfg.Model = model
		cfg.NAND.ReadLatency = 1000
		cfg.NAND.WriteLatency = 1000
		h := newHost(t, cfg)
		q := h.ioQueue(1, 64, 64)
		buf := h.mustAlloc(64 << 10)
		cmds := make([]spec.Command, 4)
		for i := range cmds {
			op := spec.IORead
			if i%2 == 1 {
				op = spec.IOWrite
			}
			cmds[i] = ioCmd(op, 1, uint64(i)*16, 16) // 64 KiB: a PRP list
			h.prps(&cmds[i], buf.Addr, 64<<10)
		}
		hotLoop(q, cmds, 256, 16) // warm up
		allocs := testing.AllocsPerRun(20, func() {
			if errs := hotLoop(q, cmds, 64, 16); errs != 0 {
				t.Errorf("%d commands failed", errs)
			}
		})
		if allocs != 0 {
			t.Errorf("model %s: %v allocations per 64 commands, want 0", model, allocs)
		}
	}
}

// BenchmarkNullDevice measures the cost per command of the null model: one host thread
// keeps 32 4 KiB reads in flight on one queue; ns/op is per command, host polling
// included. The discard variant moves no data; the mem variant copies 4 KiB per read.
func BenchmarkNullDevice(b *testing.B) {
	for _, store := range []StorePolicy{StoreDiscard, StoreMemory} {
		b.Run(string(store), func(b *testing.B) {
			cfg := testConfig()
			cfg.Store = store
			h := newHost(b, cfg)
			q := h.ioQueue(1, 256, 256)
			buf := h.mustAlloc(4096)
			cmds := make([]spec.Command, 64)
			for i := range cmds {
				cmds[i] = ioCmd(spec.IORead, 1, uint64(i), 1)
				h.prps(&cmds[i], buf.Addr, 4096)
			}
			hotLoop(q, cmds, 1024, 32)
			b.ReportAllocs()
			b.ResetTimer()
			errs := hotLoop(q, cmds, b.N, 32)
			b.StopTimer()
			if errs != 0 {
				b.Fatalf("%d commands failed", errs)
			}
		})
	}
}
