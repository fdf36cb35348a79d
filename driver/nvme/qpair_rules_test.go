package nvme

import (
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/bus/bustest"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// The doorbell writes of a queue pair must be plain stores: atomic.StoreUint32 compiles
// to XCHG on amd64, which a PCIe device sees as a read of the write-only doorbell
// followed by a write. This disassembles the queue pair's hot path.
func TestQPairDoorbellsArePlainStores(t *testing.T) {
	funcs := bustest.Disassemble(t, `driver/nvme\.\(\*QPair\)\.(ringSQ|writeDoorbell|poll|Poll|Submit|place|afterPlace|advanceSQHead)$`)
	// ringSQ and poll ring doorbells, directly or through writeDoorbell (whichever the
	// inliner chose), and the store itself is bus.Store32's assembly.
	viaStore := `driver/bus\.store32|driver/nvme\.\(\*QPair\)\.writeDoorbell`
	for _, name := range []string{"(*QPair).ringSQ", "(*QPair).poll"} {
		ins, ok := funcs["github.com/nvmeperf/nvmeperf/driver/nvme."+name]
		if !ok {
			t.Fatalf("%s not in the disassembly (have %d functions)", name, len(funcs))
		}
		if !bustest.ContainsMatch(ins, viaStore) {
			t.Errorf("%s rings no doorbell through bus.Store32", name)
		}
	}
	if wd, ok := funcs["github.com/nvmeperf/nvmeperf/driver/nvme.(*QPair).writeDoorbell"]; ok && !bustest.ContainsMatch(wd, `driver/bus\.store32`) {
		t.Errorf("writeDoorbell does not store through bus.Store32: %q", wd)
	}
	for name, ins := range funcs {
		for _, in := range ins {
			if bustest.LockedRMW.MatchString(in) {
				t.Errorf("%s contains %q: doorbells and completion reads must be plain loads/stores", name, in)
			}
		}
	}
}

type perArgCounter struct {
	done map[int]int
}

func (c *perArgCounter) CommandDone(arg any, cpl *spec.Completion) {
	c.done[arg.(int)]++
}

// A controller that posts a completion twice, or reports a wrong SQ head, must not make
// the queue pair overfill its SQ: free slots follow SQHD and only a completion naming
// an active command counts. The fake panics on CQ overflow, and every command must
// complete exactly once.
func TestQPairSurvivesDuplicateAndBadCompletions(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(d *fakeDev)
	}{
		{"duplicate CQEs", func(d *fakeDev) { d.dupEvery = 3; d.fetchMax = 3 }},
		{"SQHD beyond the queue", func(d *fakeDev) { d.badSQHD = true; d.fetchMax = 3 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDev(63)
			c := attachFake(t, d)
			defer c.Detach()
			tc.set(d)
			q, err := c.NewIOQPair(QPairOptions{Entries: 8, Requests: 32, Doorbell: target.DoorbellPerPoll})
			if err != nil {
				t.Fatal(err)
			}
			ns := c.Namespace(1)
			cb := &perArgCounter{done: map[int]int{}}
			const total = 3000
			submitted := 0
			for polls := 0; len(cb.done) < total; polls++ {
				for submitted < total && q.Outstanding() < 32 {
					if err := q.Submit(readCmd(ns, uint64(submitted)), bus.Buffer{}, cb, submitted); err != nil {
						t.Fatal(err)
					}
					submitted++
				}
				if _, err := q.Poll(); err != nil {
					t.Fatal(err)
				}
				if polls > 100*total {
					t.Fatalf("stalled: %d of %d completed", len(cb.done), total)
				}
			}
			for i, n := range cb.done {
				if n != 1 {
					t.Fatalf("command %d completed %d times", i, n)
				}
			}
			st := q.Stats()
			if st.SpuriousCIDs != uint64(d.dups) {
				t.Errorf("spurious completions %d, the fake posted %d duplicates", st.SpuriousCIDs, d.dups)
			}
			if d.badSQHD && st.BadSQHeads == 0 {
				t.Error("SQ heads beyond the queue were not noticed")
			}
			if d.dupEvery > 0 && d.dups == 0 {
				t.Error("the fake posted no duplicates: the test proves nothing")
			}
		})
	}
}
