package nvme

import (
	"errors"
	"strings"
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
	funcs := bustest.Disassemble(t, `driver/nvme\.\(\*QPair\)\.(ringSQ|ringCQ|writeDoorbell|poll|Poll|Submit|place|afterPlace|advanceSQHead)$`)
	// ringSQ and ringCQ ring doorbells, directly or through writeDoorbell (whichever the
	// inliner chose), and the store itself is bus.Store32's assembly. Shadow doorbells
	// are host memory, not registers: their atomics live in updateShadow (not inlined),
	// outside this check.
	viaStore := `driver/bus\.store32|driver/nvme\.\(\*QPair\)\.writeDoorbell`
	if !bustest.ContainsMatch(funcs["github.com/nvmeperf/nvmeperf/driver/nvme.(*QPair).poll"], `driver/nvme\.\(\*QPair\)\.ringCQ`) {
		t.Error("(*QPair).poll does not ring the CQ head through ringCQ")
	}
	for _, name := range []string{"(*QPair).ringSQ", "(*QPair).ringCQ"} {
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
	bad  int
}

func (c *perArgCounter) CommandDone(arg any, cpl *spec.Completion) {
	c.done[arg.(int)]++
	if !cpl.StatusField().OK() {
		c.bad++
	}
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
		// A copy of an old completion arriving after its command identifier's slot was
		// reused must not complete the new command (it carries an error status).
		{"late duplicate CQEs", func(d *fakeDev) { d.lateDupEvery = 5; d.lateDupMask = 31; d.fetchMax = 3 }},
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
			if cb.bad != 0 {
				t.Fatalf("%d commands completed by a stale duplicate's error status", cb.bad)
			}
			st := q.Stats()
			if st.SpuriousCIDs != uint64(d.dups) {
				t.Errorf("spurious completions %d, the fake posted %d duplicates", st.SpuriousCIDs, d.dups)
			}
			if d.badSQHD && st.BadSQHeads == 0 {
				t.Error("SQ heads beyond the queue were not noticed")
			}
			if (d.dupEvery > 0 || d.lateDupEvery > 0) && d.dups == 0 {
				t.Error("the fake posted no duplicates: the test proves nothing")
			}
		})
	}
}

// teardownLog records, in order, the transport's DMA stop and every Free.
type teardownLog struct {
	d      *fakeDev
	events []string
	ccEN   []bool // CC.EN when each stop came
}

func (l *teardownLog) Alloc(size int) (bus.Buffer, error) { return l.d.Alloc(size) }

func (l *teardownLog) Free(b bus.Buffer) error {
	l.events = append(l.events, "free")
	return l.d.Free(b)
}

func (l *teardownLog) StopDMA() error {
	l.events = append(l.events, "stop")
	l.ccEN = append(l.ccEN, spec.CC(l.d.Read32(spec.RegCC)).EN())
	return nil
}

// After a failure, memory the controller may reach is freed only once the controller
// is disabled and the transport has stopped its DMA (found on the Allocator).
func TestTeardownAfterFailureDisablesFirst(t *testing.T) {
	d := newFakeDev(63)
	log := &teardownLog{d: d}
	c, err := Attach(d, log, Options{ReadyTimeout: 50_000_000, AdminTimeout: 1_000_000_000})
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.NewIOQPair(QPairOptions{Entries: 8})
	if err != nil {
		t.Fatal(err)
	}
	c.markFailed(ErrFailed) // as when the controller stops answering
	_ = c.FreeIOQPair(q)
	if len(log.events) != 0 {
		t.Fatalf("memory freed while the failed controller was still enabled: %v", log.events)
	}
	if err := c.Detach(); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if len(log.events) < 4 || log.events[0] != "stop" {
		t.Fatalf("teardown events %v, want the DMA stop before every free", log.events)
	}
	if log.ccEN[0] {
		t.Error("DMA stopped before CC.EN was cleared")
	}
	for _, e := range log.events[1:] {
		if e != "free" {
			t.Fatalf("teardown events %v", log.events)
		}
	}
}

// A controller that will not disable, on a transport that cannot stop DMA: its memory
// is not freed, and Detach says so.
func TestTeardownLeavesMemoryOfAnUnstoppableController(t *testing.T) {
	d := newFakeDev(63)
	c := attachFake(t, d)
	q, err := c.NewIOQPair(QPairOptions{Entries: 8})
	if err != nil {
		t.Fatal(err)
	}
	d.stuckReady = true
	c.markFailed(ErrFailed)
	_ = c.FreeIOQPair(q)
	before := len(d.allocs)
	err = c.Detach()
	if err == nil || !strings.Contains(err.Error(), "left allocated") || !errors.Is(err, ErrTimeout) {
		t.Fatalf("Detach: %v", err)
	}
	if len(d.allocs) != before {
		t.Fatalf("%d buffers freed although the controller may still use them", before-len(d.allocs))
	}
}
