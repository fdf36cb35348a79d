package nvme

import (
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/target"
)

// BenchmarkTargetRoundTrip measures one submit + complete of a 4 KiB read through
// target.Queue (the path the workload drives: parent bookkeeping included) on the fake
// controller, which completes inline. ns/op is per I/O.
func BenchmarkTargetRoundTrip(b *testing.B) {
	d := newFakeDev(1023)
	c := attachFake(b, d)
	defer c.Detach()
	h := &resubmitter{}
	qi, err := NewTarget(c.Namespace(1), target.Info{}, nil).OpenQueue(target.QueueConfig{Depth: 128, IOSize: 4096, Handler: h})
	if err != nil {
		b.Fatal(err)
	}
	defer qi.Close()
	h.q = qi
	reqs := make([]target.Request, 128)
	for i := range reqs {
		reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(i) * 4096, Length: 4096, Buf: i}
		if err := qi.Submit(&reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for h.n < b.N {
		if _, err := qi.Poll(); err != nil {
			b.Fatal(err)
		}
	}
}
