package serve_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvmetcp"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/serve"
)

// smartPage reads the SMART / Health log page (512 bytes) on an admin queue.
func (h *testHost) smartPage() []byte {
	h.t.Helper()
	c := &hcmd{read: make([]byte, spec.SMARTLogSize)}
	c.sqe.SetOpcodeCID(uint8(spec.AdminGetLogPage), 0)
	c.sqe.NSID = 0xFFFFFFFF
	c.sqe.CDW10 = uint32(spec.LogSMARTHealth) | uint32(spec.SMARTLogSize/4-1)<<16
	h.run(c)
	if !status(c).OK() {
		h.t.Fatalf("Get Log Page SMART: %s", status(c))
	}
	return c.read
}

type smartCounts struct{ unitsRead, unitsWritten, readCmds, writeCmds uint64 }

func countsOf(p []byte) smartCounts {
	le := binary.LittleEndian
	return smartCounts{le.Uint64(p[32:]), le.Uint64(p[48:]), le.Uint64(p[64:]), le.Uint64(p[80:])}
}

// TestSMARTLogCounts: the SMART / Health page counts the subsystem's successful reads
// and writes (commands, and 512-byte units in thousands rounded up) over every
// controller and connection, closed ones included, and reports plausible constants.
func TestSMARTLogCounts(t *testing.T) {
	s, addr := startServer(t, serve.Config{Namespaces: []target.Target{newMemTarget(1<<20, 512)}})
	a, cntlid := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{})
	a.setQueues(1)
	p := a.smartPage()
	le := binary.LittleEndian
	if got := le.Uint16(p[1:]); got != 313 {
		t.Errorf("composite temperature %d K, want 313", got)
	}
	if p[0] != 0 || p[3] != 100 || p[4] != 10 || p[5] != 0 {
		t.Errorf("critical warning %#x, spare %d%%, threshold %d%%, used %d%%: want 0, 100, 10, 0", p[0], p[3], p[4], p[5])
	}
	if pc, poh := le.Uint64(p[112:]), le.Uint64(p[128:]); pc != 1 || poh != 0 {
		t.Errorf("power cycles %d, power on hours %d: want 1 and 0", pc, poh)
	}
	if got := countsOf(p); got != (smartCounts{}) {
		t.Fatalf("fresh server counts %+v, want zero", got)
	}

	q := ioQueue(t, addr, cntlid, 1, 32, nvmetcp.Digests{}, 0)
	buf := make([]byte, 4096)
	var cmds []*hcmd
	for i := range 3 {
		cmds = append(cmds, rw(spec.IOWrite, 1, uint64(8*i), 8, buf))
	}
	cmds = append(cmds, rw(spec.IOWrite, 1, 100, 1, buf[:512]))
	bad := rw(spec.IOWrite, 1, 1<<20, 1, buf[:512]) // beyond the namespace: not counted
	q.run(append(cmds, bad)...)
	if status(bad).OK() {
		t.Fatal("a write beyond the namespace succeeded")
	}
	q.run(rw(spec.IORead, 1, 0, 8, make([]byte, 4096)), rw(spec.IORead, 1, 8, 8, make([]byte, 4096)))
	// 25 units written and 16 read: one thousand each, rounded up.
	want := smartCounts{unitsRead: 1, unitsWritten: 1, readCmds: 2, writeCmds: 4}
	if got := countsOf(a.smartPage()); got != want {
		t.Fatalf("after 4 writes and 2 reads: %+v, want %+v", got, want)
	}

	// A second controller's I/O counts too, also once its connections are gone.
	a2, cntlid2 := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{})
	a2.setQueues(1)
	q2 := ioQueue(t, addr, cntlid2, 1, 32, nvmetcp.Digests{}, 0)
	for batch := range 5 {
		cmds = cmds[:0]
		for i := range 25 {
			cmds = append(cmds, rw(spec.IOWrite, 1, uint64(8*(25*batch+i)), 8, buf))
		}
		q2.run(cmds...)
	}
	q2.nc.Close()
	a2.nc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for s.Stats().Commands < 125 {
		if time.Now().After(deadline) {
			t.Fatal("the second controller's connections did not end within 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// 1025 units written: two thousands, rounded up.
	want = smartCounts{unitsRead: 1, unitsWritten: 2, readCmds: 2, writeCmds: 129}
	if got := countsOf(a.smartPage()); got != want {
		t.Fatalf("after the second controller's 125 writes: %+v, want %+v", got, want)
	}
	var l spec.SMARTLog
	l = s.SMARTLog()
	if spec.Counter128(l.HostWriteCommands) != 129 || spec.Counter128(l.DataUnitsWritten) != 2 {
		t.Errorf("Server.SMARTLog: %d writes, %d data units written", spec.Counter128(l.HostWriteCommands), spec.Counter128(l.DataUnitsWritten))
	}
}

// sendAER sends an Asynchronous Event Request with cid and does not wait for it.
func (h *testHost) sendAER(cid uint16) {
	h.t.Helper()
	var sqe spec.Command
	sqe.SetOpcodeCID(uint8(spec.AdminAsyncEventRequest), cid)
	h.w.CapsuleCmd(&sqe, nil)
	if err := h.w.Flush(); err != nil {
		h.t.Fatal(err)
	}
}

// nextResp reads the next PDU, which must be a response capsule.
func (h *testHost) nextResp() spec.Completion {
	h.t.Helper()
	ph, err := h.r.Next()
	if err != nil {
		h.t.Fatal(err)
	}
	if ph.CH.Type != nvmetcp.TypeCapsuleResp {
		h.t.Fatalf("got %s, want a response capsule", ph.CH.Type)
	}
	return ph.CapsuleResp.CQE
}

// TestAsyncEvents: an event raised with no request held waits for the next one; up to
// four requests are held (AERL 3), a fifth is refused, and a raised event completes
// the oldest held one with the DW0 layout of the spec; a SMART temperature event sets
// the log's critical warning bit.
func TestAsyncEvents(t *testing.T) {
	s, addr := startServer(t, serve.Config{Namespaces: []target.Target{newMemTarget(1<<20, 512)}})
	a, _ := adminController(t, addr, serve.DefaultNQN, nvmetcp.Digests{})
	d := dialHost(t, addr, nvmetcp.Digests{}) // a discovery controller takes no event
	if cpl := d.connect(0, 32, spec.ControllerIDDynamic, spec.DiscoveryNQN, 0); !cpl.StatusField().OK() {
		t.Fatalf("discovery Connect: %s", cpl.StatusField())
	}
	d.enable()

	if n := s.RaiseAsyncEvent(spec.AsyncEventTypeSMART, spec.AsyncInfoTemperature, spec.LogSMARTHealth); n != 1 {
		t.Fatalf("RaiseAsyncEvent reached %d controllers, want 1", n)
	}
	a.sendAER(1000)
	cpl := a.nextResp()
	if cpl.CID != 1000 || !cpl.StatusField().OK() || cpl.DW0 != spec.AsyncEventDW0(spec.AsyncEventTypeSMART, spec.AsyncInfoTemperature, spec.LogSMARTHealth) {
		t.Fatalf("AER completion CID %d status %s DW0 %#x: want CID 1000, success, DW0 0x020101", cpl.CID, cpl.StatusField(), cpl.DW0)
	}
	if p := a.smartPage(); p[0]&(1<<1) == 0 {
		t.Errorf("critical warning %#x: the temperature bit is not set", p[0])
	}

	for cid := uint16(1001); cid <= 1004; cid++ {
		a.sendAER(cid)
	}
	fifth := &hcmd{}
	fifth.sqe.SetOpcodeCID(uint8(spec.AdminAsyncEventRequest), 0)
	a.run(fifth)
	if st := status(fifth); st.SCT() != spec.SCTCommandSpecific || st.SC() != spec.SCAsyncEventLimitExceeded {
		t.Fatalf("fifth AER: %s, want the limit exceeded", st)
	}
	if n := s.RaiseAsyncEvent(spec.AsyncEventTypeError, 0, spec.LogErrorInformation); n != 1 {
		t.Fatalf("RaiseAsyncEvent reached %d controllers, want 1", n)
	}
	cpl = a.nextResp()
	if cpl.CID != 1001 || cpl.DW0 != uint32(spec.LogErrorInformation)<<16 {
		t.Fatalf("AER completion CID %d DW0 %#x: want the oldest held (1001) with DW0 0x010000", cpl.CID, cpl.DW0)
	}
	// The admin queue goes on answering around the held requests.
	if _, st := a.identify(spec.CNSController, 0); !st.OK() {
		t.Fatal(st)
	}
}
