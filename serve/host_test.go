package serve_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvmetcp"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/serve"
)

// testHost is a minimal NVMe/TCP host for tests: one connection, commands run in
// batches (all capsules sent, then PDUs handled until every one completed), R2Ts
// answered with H2CData chunks of at most MAXH2CDATA.
type testHost struct {
	t         testing.TB
	nc        net.Conn
	r         *nvmetcp.Reader
	w         *nvmetcp.Writer
	maxH2C    uint32
	inCapsule int // bytes of in-capsule data the controller accepts (from IOCCSZ)
	nextCID   uint16
	qid       uint16
	hostNQN   string
	hostID    [16]byte
	// SuccessSeen counts C2HData PDUs that carried SUCCESS.
	successSeen int
}

const testHostNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001"

func dialHost(t testing.TB, addr string, d nvmetcp.Digests) *testHost {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
	h := &testHost{t: t, nc: nc, r: nvmetcp.NewReader(nc, 64<<10, 4<<20), w: nvmetcp.NewWriter(nc, 64<<10),
		inCapsule: 8192 - 64, hostNQN: testHostNQN}
	h.hostID[0] = 0x42
	h.w.ICReq(0, d, 0)
	if err := h.w.Flush(); err != nil {
		t.Fatal(err)
	}
	ph, err := h.r.Next()
	if err != nil {
		t.Fatalf("reading ICResp: %v", err)
	}
	if ph.CH.Type != nvmetcp.TypeICResp {
		t.Fatalf("got %s, want ICResp", ph.CH.Type)
	}
	if got := nvmetcp.DigestsFromBits(ph.ICResp.DGST); got != d {
		t.Fatalf("ICResp digests %+v, asked %+v", got, d)
	}
	h.maxH2C = ph.ICResp.MAXH2CDATA
	h.r.SetDigests(d)
	h.w.SetDigests(d)
	h.w.SetDataAlignment(ph.ICResp.CPDA)
	return h
}

// hcmd is one command of a batch.
type hcmd struct {
	sqe   spec.Command
	write []byte // host-to-controller data
	read  []byte // controller-to-host data lands here
	cpl   spec.Completion
	done  bool
	got   int
}

func (h *testHost) run(cmds ...*hcmd) {
	h.t.Helper()
	if err := h.tryRun(cmds...); err != nil {
		h.t.Fatal(err)
	}
}

func (h *testHost) tryRun(cmds ...*hcmd) error {
	byCID := map[uint16]*hcmd{}
	for _, c := range cmds {
		cid := h.nextCID
		h.nextCID++
		c.sqe.SetCID(cid)
		byCID[cid] = c
		switch {
		case len(c.write) > 0 && len(c.write) <= h.inCapsule:
			nvmetcp.SetCommandData(&c.sqe, uint32(len(c.write)), true)
			h.w.CapsuleCmd(&c.sqe, c.write)
		case len(c.write) > 0:
			nvmetcp.SetCommandData(&c.sqe, uint32(len(c.write)), false)
			h.w.CapsuleCmd(&c.sqe, nil)
		case len(c.read) > 0:
			nvmetcp.SetCommandData(&c.sqe, uint32(len(c.read)), false)
			h.w.CapsuleCmd(&c.sqe, nil)
		default:
			h.w.CapsuleCmd(&c.sqe, nil)
		}
	}
	if err := h.w.Flush(); err != nil {
		return err
	}
	left := len(cmds)
	for left > 0 {
		ph, err := h.r.Next()
		if err != nil {
			return err
		}
		switch ph.CH.Type {
		case nvmetcp.TypeCapsuleResp:
			c := byCID[ph.CapsuleResp.CQE.CID]
			if c == nil || c.done {
				return fmt.Errorf("response for unknown CID %d", ph.CapsuleResp.CQE.CID)
			}
			c.cpl, c.done = ph.CapsuleResp.CQE, true
			left--
		case nvmetcp.TypeC2HData:
			d := ph.C2HData
			c := byCID[d.CCCID]
			if c == nil || int(d.DATAO)+int(d.DATAL) > len(c.read) {
				return fmt.Errorf("C2HData for CID %d at %d+%d does not fit", d.CCCID, d.DATAO, d.DATAL)
			}
			if err := h.r.ReadData(c.read[d.DATAO : d.DATAO+d.DATAL]); err != nil {
				return err
			}
			c.got += int(d.DATAL)
			if d.CH.Flags&nvmetcp.FlagSuccess != 0 {
				h.successSeen++
				c.cpl, c.done = spec.Completion{CID: d.CCCID}, true
				left--
			}
		case nvmetcp.TypeR2T:
			r := ph.R2T
			c := byCID[r.CCCID]
			if c == nil || uint64(r.R2TO)+uint64(r.R2TL) > uint64(len(c.write)) {
				return fmt.Errorf("R2T for CID %d at %d+%d does not fit", r.CCCID, r.R2TO, r.R2TL)
			}
			for off := r.R2TO; off < r.R2TO+r.R2TL; {
				n := min(h.maxH2C, r.R2TO+r.R2TL-off)
				h.w.H2CData(r.CCCID, r.TTAG, off, c.write[off:off+n], off+n == r.R2TO+r.R2TL)
				off += n
			}
			if err := h.w.Flush(); err != nil {
				return err
			}
		case nvmetcp.TypeC2HTermReq:
			return fmt.Errorf("controller ended the connection: FES %#x", ph.TermReq.FES)
		default:
			return fmt.Errorf("unexpected %s", ph.CH.Type)
		}
	}
	return nil
}

func status(c *hcmd) spec.Status { return c.cpl.StatusField() }

func (h *testHost) connect(qid, sqsize, cntlid uint16, subnqn string, cattr uint8) spec.Completion {
	h.t.Helper()
	cc := spec.ConnectCommand{Opcode: spec.OpcodeFabrics, FCType: uint8(spec.FabricsConnect),
		QID: qid, SQSIZE: sqsize - 1, CATTR: cattr, KATO: 0}
	var cd spec.ConnectData
	cd.HostID = h.hostID
	cd.CNTLID = cntlid
	cd.SetNQNs(subnqn, h.hostNQN)
	data := make([]byte, spec.ConnectDataSize)
	cd.Marshal(data)
	c := &hcmd{sqe: cc.ToCommand(), write: data}
	h.qid = qid
	h.run(c)
	return c.cpl
}

func (h *testHost) propGet(off uint32, size8 bool) (uint64, spec.Status) {
	h.t.Helper()
	pg := spec.PropertyGetCommand{OFST: off}
	if size8 {
		pg.ATTRIB = spec.PropertySize8
	}
	c := &hcmd{sqe: pg.ToCommand()}
	h.run(c)
	return uint64(c.cpl.DW0) | uint64(c.cpl.DW1)<<32, status(c)
}

func (h *testHost) propSet(off uint32, v uint64) spec.Status {
	h.t.Helper()
	ps := spec.PropertySetCommand{OFST: off, VALUE: v}
	c := &hcmd{sqe: ps.ToCommand()}
	h.run(c)
	return status(c)
}

// enable runs the admin queue bring-up: CC.EN=1, wait for CSTS.RDY.
func (h *testHost) enable() {
	h.t.Helper()
	cc := spec.MakeCC(true, 0, 0, 0, spec.SQESizeLog, spec.CQESizeLog)
	if st := h.propSet(spec.RegCC, uint64(cc)); !st.OK() {
		h.t.Fatalf("Property Set CC: %s", st)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, st := h.propGet(spec.RegCSTS, false)
		if !st.OK() {
			h.t.Fatalf("Property Get CSTS: %s", st)
		}
		if spec.CSTS(v).RDY() {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("CSTS.RDY never set (CSTS %s)", spec.CSTS(v))
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *testHost) identify(cns uint8, nsid uint32) ([]byte, spec.Status) {
	h.t.Helper()
	c := &hcmd{read: make([]byte, spec.IdentifyDataSize)}
	c.sqe.SetOpcodeCID(uint8(spec.AdminIdentify), 0)
	c.sqe.NSID = nsid
	c.sqe.CDW10 = uint32(cns)
	h.run(c)
	return c.read, status(c)
}

func (h *testHost) setQueues(n uint16) uint32 {
	h.t.Helper()
	c := &hcmd{}
	c.sqe.SetOpcodeCID(uint8(spec.AdminSetFeatures), 0)
	c.sqe.CDW10 = spec.FeatureNumberOfQueues
	c.sqe.CDW11 = spec.NumberOfQueues(n, n)
	h.run(c)
	if !status(c).OK() {
		h.t.Fatalf("Set Features Number of Queues: %s", status(c))
	}
	nsq, _ := spec.DecodeNumberOfQueues(c.cpl.DW0)
	return nsq
}

// adminController connects an admin queue to subnqn, enables the controller and
// returns it with its CNTLID.
func adminController(t testing.TB, addr, subnqn string, d nvmetcp.Digests) (*testHost, uint16) {
	t.Helper()
	h := dialHost(t, addr, d)
	cpl := h.connect(0, 32, spec.ControllerIDDynamic, subnqn, 0)
	if !cpl.StatusField().OK() {
		t.Fatalf("admin Connect: %s", cpl.StatusField())
	}
	h.enable()
	return h, uint16(cpl.DW0)
}

func ioQueue(t testing.TB, addr string, cntlid, qid, size uint16, d nvmetcp.Digests, cattr uint8) *testHost {
	t.Helper()
	h := dialHost(t, addr, d)
	cpl := h.connect(qid, size, cntlid, serve.DefaultNQN, cattr)
	if !cpl.StatusField().OK() {
		t.Fatalf("I/O queue %d Connect: %s", qid, cpl.StatusField())
	}
	if uint16(cpl.DW0) != cntlid {
		t.Fatalf("I/O Connect returned CNTLID %d, want %d", uint16(cpl.DW0), cntlid)
	}
	return h
}

func rw(op spec.IOOpcode, nsid uint32, slba uint64, nlb uint32, data []byte) *hcmd {
	c := &hcmd{}
	c.sqe.SetOpcodeCID(uint8(op), 0)
	c.sqe.NSID = nsid
	c.sqe.SetLBARange(slba, nlb)
	if op == spec.IOWrite {
		c.write = data
	} else {
		c.read = data
	}
	return c
}

// memTarget is a RAM-backed target.Target: it completes each request on the next Poll.
type memTarget struct {
	mu      sync.Mutex
	data    []byte
	lbaSize uint32
	queues  int
}

func newMemTarget(size int, lba uint32) *memTarget {
	return &memTarget{data: make([]byte, size), lbaSize: lba}
}

func (m *memTarget) Info() target.Info {
	return target.Info{Name: "mem", Transport: "mem", LBASize: m.lbaSize, Capacity: uint64(len(m.data))}
}

func (m *memTarget) OpenQueue(cfg target.QueueConfig) (target.Queue, error) {
	m.mu.Lock()
	m.queues++
	m.mu.Unlock()
	nbuf := cfg.Buffers
	if nbuf == 0 {
		nbuf = cfg.Depth
	}
	q := &memQueue{m: m, h: cfg.Handler, bufs: make([][]byte, nbuf)}
	for i := range q.bufs {
		q.bufs[i] = make([]byte, cfg.IOSize)
	}
	return q, nil
}

func (m *memTarget) Close() error { return nil }

type memQueue struct {
	m       *memTarget
	h       target.Handler
	bufs    [][]byte
	pending []*target.Request
}

func (q *memQueue) Buffer(i int) []byte { return q.bufs[i] }
func (q *memQueue) Submit(r *target.Request) error {
	if int(r.Offset)+int(r.Length) > len(q.m.data) {
		return errors.New("out of range")
	}
	q.pending = append(q.pending, r)
	return nil
}
func (q *memQueue) Poll() (int, error) {
	n := len(q.pending)
	q.m.mu.Lock()
	for _, r := range q.pending {
		if r.Op == target.OpWrite {
			copy(q.m.data[r.Offset:], q.bufs[r.Buf][:r.Length])
		} else {
			copy(q.bufs[r.Buf][:r.Length], q.m.data[r.Offset:])
		}
	}
	q.m.mu.Unlock()
	done := q.pending
	q.pending = q.pending[:0]
	for _, r := range done {
		r.Err = nil
		q.h.Complete(r)
	}
	return n, nil
}
func (q *memQueue) Outstanding() int { return len(q.pending) }
func (q *memQueue) Close() error     { return nil }

// startServer serves cfg on a loopback port and stops it when the test ends.
func startServer(t testing.TB, cfg serve.Config) (*serve.Server, string) {
	t.Helper()
	s, err := serve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

// expectTermReq reads until the controller's C2HTermReq and then end of stream.
func expectTermReq(t testing.TB, h *testHost, fes uint16) {
	t.Helper()
	ph, err := h.r.Next()
	if err != nil {
		t.Fatalf("want a C2HTermReq, got error %v", err)
	}
	if ph.CH.Type != nvmetcp.TypeC2HTermReq {
		t.Fatalf("want a C2HTermReq, got %s", ph.CH.Type)
	}
	if ph.TermReq.FES != fes {
		t.Fatalf("TermReq FES %#x, want %#x", ph.TermReq.FES, fes)
	}
	if _, err := h.r.Next(); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("after the TermReq: %v, want the connection closed", err)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
func le16(b []byte, off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }

func dialRaw(t testing.TB, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
	return nc
}

// fatalCatcher lets helpers that call Fatal run on goroutines other than the test's:
// Fatal records the error and unwinds the goroutine with errFatal.
type fatalCatcher struct {
	testing.TB
	err error
}

var errFatal = errors.New("fatal in a helper goroutine")

func (f *fatalCatcher) Helper() {}
func (f *fatalCatcher) Fatal(args ...any) {
	f.err = errors.New(fmt.Sprint(args...))
	panic(errFatal)
}
func (f *fatalCatcher) Fatalf(format string, args ...any) {
	f.err = fmt.Errorf(format, args...)
	panic(errFatal)
}
