package uring

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/blockdev/looptest"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
)

// collector is a Handler that records completions.
type collector struct {
	done []*target.Request
}

func (c *collector) Complete(r *target.Request) { c.done = append(c.done, r) }

// requireURing skips when this kernel cannot run io_uring at all.
func requireURing(t testing.TB) {
	t.Helper()
	if err := probe(); err != nil {
		t.Skipf("io_uring unusable here: %v", err)
	}
}

// tempFile returns a path for a test file on a file system that supports O_DIRECT.
func tempFile(t testing.TB) string {
	t.Helper()
	requireURing(t)
	p := filepath.Join(t.TempDir(), "data")
	fd, err := unix.Open(p, unix.O_CREAT|unix.O_RDWR|unix.O_DIRECT, 0o644)
	if errors.Is(err, unix.EINVAL) {
		t.Skipf("the test directory's file system does not support O_DIRECT (%s)", filepath.Dir(p))
	}
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	os.Remove(p)
	return p
}

// run submits reqs (at most depth at a time) and polls until all complete.
func run(t testing.TB, q target.Queue, c *collector, reqs []target.Request) {
	t.Helper()
	c.done = c.done[:0]
	for i := range reqs {
		if err := q.Submit(&reqs[i]); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	// A deadline, not a poll count: on a loaded machine (or with SQPOLL, whose kernel
	// thread may not get a CPU for a while) polls can come back empty for a long time.
	deadline := time.Now().Add(30 * time.Second)
	for len(c.done) < len(reqs) {
		if _, err := q.Poll(); err != nil {
			t.Fatalf("poll: %v", err)
		}
		if len(c.done) < len(reqs) && time.Now().After(deadline) {
			t.Fatalf("%d of %d requests completed within 30 s", len(c.done), len(reqs))
		}
	}
	if q.Outstanding() != 0 {
		t.Fatalf("%d outstanding after all completed", q.Outstanding())
	}
}

func fill(b []byte, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// writeReadBack writes distinct data to blocks blocks of ioSize through q, reads them
// back into other buffers and compares.
func writeReadBack(t *testing.T, q target.Queue, c *collector, ioSize, blocks int) {
	t.Helper()
	reqs := make([]target.Request, blocks)
	for i := range reqs {
		fill(q.Buffer(i), uint64(i+1))
		// Scatter the blocks: block i goes to slot (i*7)%blocks.
		reqs[i] = target.Request{Op: target.OpWrite, Offset: uint64((i*7)%blocks) * uint64(ioSize), Length: uint32(ioSize), Buf: i}
	}
	run(t, q, c, reqs)
	for _, r := range c.done {
		if r.Err != nil {
			t.Fatalf("write: %v", r.Err)
		}
	}
	for i := range reqs {
		clear(q.Buffer(blocks + i))
		reqs[i] = target.Request{Op: target.OpRead, Offset: uint64((i*7)%blocks) * uint64(ioSize), Length: uint32(ioSize), Buf: blocks + i, Tag: i}
	}
	run(t, q, c, reqs)
	want := make([]byte, ioSize)
	for _, r := range c.done {
		if r.Err != nil {
			t.Fatalf("read: %v", r.Err)
		}
		fill(want, uint64(r.Tag+1))
		if !bytes.Equal(q.Buffer(r.Buf), want) {
			t.Fatalf("read at offset %d returned other data than written", r.Offset)
		}
	}
}

func openQueue(t testing.TB, tg target.Target, cfg target.QueueConfig) (target.Queue, *collector) {
	t.Helper()
	c := &collector{}
	cfg.Handler = c
	q, err := tg.OpenQueue(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Error(err)
		}
	})
	return q, c
}

func TestFileWriteReadBack(t *testing.T) {
	p := tempFile(t)
	for _, mode := range []struct {
		name string
		cfg  target.QueueConfig
	}{
		{"per-poll", target.QueueConfig{Doorbell: target.DoorbellPerPoll}},
		{"every-3", target.QueueConfig{Doorbell: target.DoorbellEveryN, DoorbellN: 3}},
		{"per-command", target.QueueConfig{Doorbell: target.DoorbellPerCommand}},
		{"max-completions-1", target.QueueConfig{MaxCompletions: 1}},
		{"small-ring", target.QueueConfig{QueueSize: 4}}, // 32 requests through a 4-entry SQ: backlog
	} {
		t.Run(mode.name, func(t *testing.T) {
			tg, err := Open(p, Options{Size: 1 << 20, Writes: true})
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			info := tg.Info()
			if info.Transport != "io_uring" || info.Capacity != 1<<20 || info.LBASize == 0 {
				t.Fatalf("info %+v", info)
			}
			cfg := mode.cfg
			if cfg.Depth == 0 {
				cfg.Depth = 32
			}
			cfg.IOSize, cfg.Buffers = 8192, 64
			q, c := openQueue(t, tg, cfg)
			if cfg.MaxCompletions == 1 {
				r := target.Request{Op: target.OpRead, Length: 8192, Buf: 0}
				r2 := r
				r2.Buf = 1
				q.Submit(&r)
				q.Submit(&r2)
				for n, total := 0, 0; total < 2; total += n {
					if n, err = q.Poll(); err != nil || n > 1 {
						t.Fatalf("Poll reaped %d (limit 1), err %v", n, err)
					}
				}
			}
			writeReadBack(t, q, c, 8192, 32)
		})
	}
}

func TestFileMixedAndSQPoll(t *testing.T) {
	p := tempFile(t)
	for _, opt := range []Options{{Size: 4 << 20, Writes: true}, {Size: 4 << 20, Writes: true, SQPoll: true}, {Size: 4 << 20, Writes: true, BusyPoll: true}} {
		t.Run(fmt.Sprintf("sqpoll=%v,busy=%v", opt.SQPoll, opt.BusyPoll), func(t *testing.T) {
			tg, err := Open(p, opt)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			const blocks, size = 256, 4096
			q, c := openQueue(t, tg, target.QueueConfig{Depth: 16, IOSize: size, Buffers: 16})
			// A model of the file: random reads and writes with data checked on every read.
			model := make([][]byte, blocks)
			rng := rand.New(rand.NewPCG(3, 4))
			reqs := make([]target.Request, 16)
			for round := 0; round < 20; round++ {
				used := map[int]bool{}
				for i := range reqs {
					blk := rng.IntN(blocks)
					for used[blk] {
						blk = rng.IntN(blocks)
					}
					used[blk] = true
					reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(blk * size), Length: size, Buf: i, Tag: blk}
					if rng.IntN(2) == 0 {
						reqs[i].Op = target.OpWrite
						fill(q.Buffer(i), rng.Uint64())
						model[blk] = bytes.Clone(q.Buffer(i))
					}
				}
				run(t, q, c, reqs)
				for _, r := range c.done {
					if r.Err != nil {
						t.Fatal(r.Err)
					}
					if r.Op == target.OpRead && model[r.Tag] != nil && !bytes.Equal(q.Buffer(r.Buf), model[r.Tag]) {
						t.Fatalf("round %d: block %d read back wrong", round, r.Tag)
					}
				}
			}
		})
	}
}

func TestLoopDevice(t *testing.T) {
	requireURing(t)
	dev := looptest.New(t, 16<<20, looptest.Options{SectorSize: 4096})
	tg, err := Open(dev, Options{Writes: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	info := tg.Info()
	if info.LBASize != 4096 || info.Capacity != 16<<20 || info.Name != dev || info.Transport != "io_uring" {
		t.Errorf("info %+v", info)
	}
	q, c := openQueue(t, tg, target.QueueConfig{Depth: 32, IOSize: 16384, Buffers: 128})
	writeReadBack(t, q, c, 16384, 64)

	// 512-byte I/O on a 4 KiB-sector device is refused up front, naming both sizes.
	if _, err := tg.OpenQueue(target.QueueConfig{Depth: 1, IOSize: 512, Handler: c}); err == nil ||
		!strings.Contains(err.Error(), "I/O size 512 is not a multiple of "+dev+"'s logical block size 4096") {
		t.Errorf("512-byte I/O: err = %v", err)
	}
	r := target.Request{Op: target.OpRead, Offset: 16 << 20, Length: 16384}
	if err := q.Submit(&r); err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Errorf("read past the end: err = %v", err)
	}
	r = target.Request{Op: target.OpRead, Offset: 512, Length: 4096}
	if err := q.Submit(&r); err == nil || !strings.Contains(err.Error(), "offset 512") {
		t.Errorf("unaligned offset: err = %v", err)
	}
}

func TestLoopDeviceSafety(t *testing.T) {
	requireURing(t)
	dev := looptest.New(t, 32<<20, looptest.Options{})
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	if out, err := exec.Command(mkfs, "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	_, err = Open(dev, Options{Writes: true})
	if err == nil || !strings.Contains(err.Error(), "ext2/3/4 file system") || !strings.Contains(err.Error(), "--allow-destructive") {
		t.Fatalf("write to a file system: err = %v", err)
	}
	// Reading is harmless.
	tg, err := Open(dev, Options{})
	if err != nil {
		t.Fatalf("read-only: %v", err)
	}
	q, c := openQueue(t, tg, target.QueueConfig{Depth: 1, IOSize: 4096})
	w := target.Request{Op: target.OpWrite, Length: 4096}
	if err := q.Submit(&w); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("write on a read-only target: err = %v", err)
	}
	run(t, q, c, []target.Request{{Op: target.OpRead, Offset: 1024 - 1024, Length: 4096}})
	if c.done[0].Err != nil || q.Buffer(0)[1080] != 0x53 || q.Buffer(0)[1081] != 0xef {
		t.Errorf("reading the superblock: %v", c.done[0].Err)
	}
	q.Close()
	tg.Close()

	tg, err = Open(dev, Options{Writes: true, AllowDestructive: true})
	if err != nil {
		t.Fatalf("with AllowDestructive: %v", err)
	}
	tg.Close()
}

func TestLoopDevicePartitionTable(t *testing.T) {
	requireURing(t)
	dev := looptest.New(t, 8<<20, looptest.Options{Init: func(f *os.File) error {
		mbr := make([]byte, 512)
		mbr[446+4] = 0x83
		mbr[446+8] = 8 // start LBA 8
		mbr[446+12] = 64
		mbr[510], mbr[511] = 0x55, 0xaa
		_, err := f.WriteAt(mbr, 0)
		return err
	}})
	if _, err := Open(dev, Options{Writes: true}); err == nil || !strings.Contains(err.Error(), "MBR partition table") {
		t.Fatalf("write to a partitioned device: err = %v", err)
	}
	tg, err := Open(dev, Options{Writes: true, AllowDestructive: true})
	if err != nil {
		t.Fatal(err)
	}
	tg.Close()
}

func TestCompletionError(t *testing.T) {
	p := tempFile(t)
	tg, err := Open(p, Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	// The file is open read-only; let a write through the queue's own check so the
	// kernel fails it with EBADF in its CQE.
	tg.(*Target).opt.Writes = true
	q, c := openQueue(t, tg, target.QueueConfig{Depth: 1, IOSize: 4096})
	run(t, q, c, []target.Request{{Op: target.OpWrite, Offset: 4096, Length: 4096}})
	err = c.done[0].Err
	if !errors.Is(err, unix.EBADF) || err.Error() != "io_uring: write at offset 4096 len 4096: bad file descriptor" {
		t.Errorf("write to a read-only file: err = %v", err)
	}

	// A file shrunk behind nvmeperf's back reads short: the error says how much came.
	if err := os.Truncate(p, 4096+512); err != nil {
		t.Fatal(err)
	}
	run(t, q, c, []target.Request{{Op: target.OpRead, Offset: 4096, Length: 4096}})
	var ioe *IOError
	if err := c.done[0].Err; !errors.As(err, &ioe) || err.Error() != "io_uring: read at offset 4096 len 4096: short transfer of 512 bytes" {
		t.Errorf("short read: err = %v", err)
	}
}

func TestIOPoll(t *testing.T) {
	p := tempFile(t)
	tg, err := Open(p, Options{Size: 1 << 20, IOPoll: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	q, c := openQueue(t, tg, target.QueueConfig{Depth: 1, IOSize: 4096})
	run(t, q, c, []target.Request{{Op: target.OpRead, Offset: 0, Length: 4096}})
	// Polled completion needs driver support (NVMe poll queues); elsewhere the request
	// fails, and the error must say why.
	t.Logf("IOPOLL read on %s: %v", p, c.done[0].Err)
	if err := c.done[0].Err; err != nil && (!errors.Is(err, unix.EOPNOTSUPP) || !strings.Contains(err.Error(), "io_uring: read at offset 0 len 4096: operation not supported")) {
		t.Errorf("IOPOLL: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	p := tempFile(t)
	if _, err := Open(p, Options{}); err == nil || !strings.Contains(err.Error(), "does not exist; give a size") {
		t.Errorf("missing file without size: %v", err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p, Options{}); err == nil || !strings.Contains(err.Error(), "is empty; give a size") {
		t.Errorf("empty file without size: %v", err)
	}
	if _, err := Open(p, Options{Size: -1}); err == nil || !strings.Contains(err.Error(), "size -1") {
		t.Errorf("negative size: %v", err)
	}
	if _, err := Open(p, Options{Size: 1 << 20, Passthrough: true}); err == nil || !strings.Contains(err.Error(), "passthrough needs an NVMe device") {
		t.Errorf("passthrough on a file: %v", err)
	}
	// Extending: an existing file grows to Size.
	tg, err := Open(p, Options{Size: 3 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Size() != 3<<20 || tg.Info().Capacity != 3<<20 {
		t.Errorf("extended to %v, capacity %d", st.Size(), tg.Info().Capacity)
	}
	c := &collector{}
	for _, cfg := range []struct {
		cfg  target.QueueConfig
		want string
	}{
		{target.QueueConfig{Depth: 0, IOSize: 4096, Handler: c}, "queue depth 0"},
		{target.QueueConfig{Depth: 1, IOSize: 1000, Handler: c}, "I/O size 1000 is not a multiple"},
		{target.QueueConfig{Depth: 1, IOSize: 4096, Handler: c, BufferOffset: 5000}, "buffer offset 5000"},
		{target.QueueConfig{Depth: 1, IOSize: 4096, Handler: c, Doorbell: target.DoorbellEveryN}, "N must be at least 1"},
		{target.QueueConfig{Depth: 1, IOSize: 4096}, "no completion handler"},
	} {
		if _, err := tg.OpenQueue(cfg.cfg); err == nil || !strings.Contains(err.Error(), cfg.want) {
			t.Errorf("%+v: err = %v, want %q", cfg.cfg, err, cfg.want)
		}
	}
	tg.Close()

	// tmpfs gained O_DIRECT only recently; where it lacks it the error must say so.
	if _, err := os.Stat("/dev/shm"); err == nil {
		shm, err := os.MkdirTemp("/dev/shm", "uring-test")
		if err == nil {
			defer os.RemoveAll(shm)
			tg, err := Open(filepath.Join(shm, "f"), Options{Size: 1 << 20})
			if err == nil {
				tg.Close()
			} else if !strings.Contains(err.Error(), "does not support direct I/O") {
				t.Errorf("tmpfs: %v", err)
			}
		}
	}
}

func TestSetupErrors(t *testing.T) {
	if err := setupError(unix.ENOSYS); !strings.Contains(err.Error(), "not available in this kernel") || !errors.Is(err, unix.ENOSYS) {
		t.Errorf("ENOSYS: %v", err)
	}
	if err := setupError(unix.EPERM); !strings.Contains(err.Error(), "disabled by sysctl kernel.io_uring_disabled=") || !errors.Is(err, unix.EPERM) {
		t.Errorf("EPERM: %v", err)
	}
	old := geteuid
	defer func() { geteuid = old }()
	geteuid = func() int { return 1000 }
	if e := openError("/dev/x", false, true, unix.EACCES); !strings.Contains(e.Error(), "opening /dev/x for reading and writing: permission denied; run as root") {
		t.Errorf("EACCES: %v", e)
	}
	// Root is refused by an immutable file, not by permissions: never "run as root".
	geteuid = func() int { return 0 }
	for _, errno := range []error{unix.EACCES, unix.EPERM} {
		if e := openError("/x", false, true, errno); strings.Contains(e.Error(), "run as root") || !strings.Contains(e.Error(), "immutable") {
			t.Errorf("%v as root: %v", errno, e)
		}
	}
	if e := openError("/x", false, false, unix.EINVAL); !strings.Contains(e.Error(), "does not support direct I/O") {
		t.Errorf("EINVAL: %v", e)
	}
}

func TestReleaseAtLeast(t *testing.T) {
	for _, c := range []struct {
		rel  string
		want bool
	}{{"6.1.0-13-amd64", true}, {"6.18.44-fc", true}, {"5.19.0", false}, {"6.0.9", false}, {"7.0", true}, {"6.1-rc1", true}, {"garbage", false}} {
		if got := releaseAtLeast(c.rel, 6, 1); got != c.want {
			t.Errorf("releaseAtLeast(%q, 6, 1) = %v", c.rel, got)
		}
	}
}

func TestZeroAllocsPerIO(t *testing.T) {
	p := tempFile(t)
	tg, err := Open(p, Options{Size: 1 << 20, Writes: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	q, c := openQueue(t, tg, target.QueueConfig{Depth: 8, IOSize: 4096})
	c.done = make([]*target.Request, 0, 64)
	reqs := make([]target.Request, 8)
	for i := range reqs {
		reqs[i] = target.Request{Op: target.Op(i % 2), Offset: uint64(i) * 4096, Length: 4096, Buf: i}
	}
	allocs := testing.AllocsPerRun(200, func() {
		c.done = c.done[:0]
		for i := range reqs {
			if err := q.Submit(&reqs[i]); err != nil {
				t.Fatal(err)
			}
		}
		for len(c.done) < len(reqs) {
			if _, err := q.Poll(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per batch of 8 I/Os, want 0", allocs)
	}
}

// BenchmarkFileRead4K is the per-I/O cost of the engine reading a cached-on-device 4 KiB
// block at QD 32 (a file on the test machine's disk).
func BenchmarkFileRead4K(b *testing.B) {
	p := tempFile(b)
	tg, err := Open(p, Options{Size: 16 << 20, Writes: true})
	if err != nil {
		b.Fatal(err)
	}
	defer tg.Close()
	h := &resubmitter{}
	q, err := tg.OpenQueue(target.QueueConfig{Depth: 32, IOSize: 4096, Handler: h})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	h.q = q
	reqs := make([]target.Request, 32)
	b.ReportAllocs()
	b.ResetTimer()
	h.left = b.N
	for i := range reqs {
		reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(i) * 4096, Length: 4096, Buf: i}
		q.Submit(&reqs[i])
	}
	for q.Outstanding() > 0 {
		if _, err := q.Poll(); err != nil {
			b.Fatal(err)
		}
	}
}

type resubmitter struct {
	q    target.Queue
	left int
	off  uint64
}

func (h *resubmitter) Complete(r *target.Request) {
	if h.left <= 0 {
		return
	}
	h.left--
	h.off = (h.off + 4096*97) % (16 << 20)
	r.Offset = h.off
	h.q.Submit(r)
}

func TestABILayout(t *testing.T) {
	var s sqe
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sqe.fd", unsafe.Offsetof(s.FD), 4},
		{"sqe.off", unsafe.Offsetof(s.Off), 8},
		{"sqe.addr", unsafe.Offsetof(s.Addr), 16},
		{"sqe.len", unsafe.Offsetof(s.Len), 24},
		{"sqe.rw_flags", unsafe.Offsetof(s.OpFlags), 28},
		{"sqe.user_data", unsafe.Offsetof(s.UserData), 32},
		{"sqe.buf_index", unsafe.Offsetof(s.BufIndex), 40},
		{"sqe.personality", unsafe.Offsetof(s.Personality), 42},
		{"sqe.file_index", unsafe.Offsetof(s.FileIndex), 44},
		{"sqe.addr3", unsafe.Offsetof(s.Addr3), 48},
		{"params.sq_off", unsafe.Offsetof(params{}.SQOff), 40},
		{"params.cq_off", unsafe.Offsetof(params{}.CQOff), 80},
		{"cqe.res", unsafe.Offsetof(cqe{}.Res), 8},
		{"nvme_uring_cmd.nsid", unsafe.Offsetof(nvmeURingCmd{}.NSID), 4},
		{"nvme_uring_cmd.addr", unsafe.Offsetof(nvmeURingCmd{}.Addr), 24},
		{"nvme_uring_cmd.data_len", unsafe.Offsetof(nvmeURingCmd{}.DataLen), 36},
		{"nvme_uring_cmd.cdw10", unsafe.Offsetof(nvmeURingCmd{}.CDW10), 40},
		{"nvme_uring_cmd.timeout_ms", unsafe.Offsetof(nvmeURingCmd{}.TimeoutMs), 64},
		{"sizeof(io_uring_sqe)", unsafe.Sizeof(sqe{}), 64},
		{"sizeof(SQE128)", unsafe.Sizeof(sqe128{}), 128},
		{"sizeof(io_uring_cqe)", unsafe.Sizeof(cqe{}), 16},
		{"sizeof(CQE32)", unsafe.Sizeof(cqe32{}), 32},
		{"sizeof(io_uring_params)", unsafe.Sizeof(params{}), 120},
		{"sizeof(nvme_uring_cmd)", unsafe.Sizeof(nvmeURingCmd{}), 72},
		{"NVME_URING_CMD_IO", uintptr(nvmeURingCmdIO), 0xC0484E80},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestNVMeReadWriteEncoding(t *testing.T) {
	c := nvmeReadWrite(target.OpRead, 3, 12, 0x123456789000, 16384, 0xdead000)
	if c.Opcode != uint8(spec.IORead) || c.NSID != 3 || c.Addr != 0xdead000 || c.DataLen != 16384 {
		t.Errorf("read: %+v", c)
	}
	// 0x123456789000 bytes / 4096 = LBA 0x123456789: CDW10 low half, CDW11 high half.
	if c.CDW10 != 0x23456789 || c.CDW11 != 0x1 || c.CDW12 != 3 {
		t.Errorf("read LBA fields: cdw10 %#x cdw11 %#x cdw12 %#x", c.CDW10, c.CDW11, c.CDW12)
	}
	w := nvmeReadWrite(target.OpWrite, 1, 9, 512*7, 512, 0x1000)
	if w.Opcode != uint8(spec.IOWrite) || w.CDW10 != 7 || w.CDW11 != 0 || w.CDW12 != 0 || w.DataLen != 512 {
		t.Errorf("write: %+v", w)
	}
	// The largest command: 65536 blocks is NLB 0xFFFF.
	if m := nvmeReadWrite(target.OpRead, 1, 9, 0, 65536*512, 0); m.CDW12 != 0xFFFF {
		t.Errorf("65536 blocks: cdw12 %#x", m.CDW12)
	}
	// Decoded the way the userspace driver reads a command back.
	cmd := spec.Command{CDW10: c.CDW10, CDW11: c.CDW11, CDW12: c.CDW12}
	if cmd.SLBA() != 0x123456789 || cmd.NLB() != 4 {
		t.Errorf("spec decode: SLBA %#x NLB %d", cmd.SLBA(), cmd.NLB())
	}
}

// TestPassthroughSQE builds a passthrough queue on a ring without a device and checks
// the 128-byte SQE Submit writes: the URING_CMD header and the NVMe command.
func TestPassthroughSQE(t *testing.T) {
	requireURing(t)
	tg := &Target{path: "/dev/ng0n1", fd: 0, lbaSize: 512, capacity: 1 << 30, passthrough: true, nsid: 5, fixedCmd: true,
		opt: Options{Writes: true}}
	c := &collector{}
	qi, err := tg.OpenQueue(target.QueueConfig{Depth: 4, IOSize: 8192, Handler: c})
	if err != nil {
		t.Fatal(err)
	}
	defer qi.Close()
	q := qi.(*queue)
	if q.r.sqeSize != 128 || q.r.cqeSize != 32 {
		t.Fatalf("ring entry sizes %d/%d, want SQE128/CQE32", q.r.sqeSize, q.r.cqeSize)
	}
	r := target.Request{Op: target.OpWrite, Offset: 512 * 1000, Length: 4096, Buf: 2}
	if err := q.Submit(&r); err != nil {
		t.Fatal(err)
	}
	s := (*sqe128)(q.r.sqeBase)
	if s.Opcode != opURingCmd || s.cmdOp() != nvmeURingCmdIO || s.Len != 0 || s.Addr != 0 {
		t.Errorf("header: opcode %d cmd_op %#x", s.Opcode, s.cmdOp())
	}
	if q.fixedBufs && (s.OpFlags != uringCmdFixed || s.BufIndex != 2) {
		t.Errorf("fixed buffer: uring_cmd_flags %#x buf_index %d", s.OpFlags, s.BufIndex)
	}
	if q.fileFlags == sqeFixedFile && (s.Flags != sqeFixedFile || s.FD != 0) {
		t.Errorf("fixed file: flags %#x fd %d", s.Flags, s.FD)
	}
	cmd := s.nvmeCmd()
	if cmd.Opcode != uint8(spec.IOWrite) || cmd.NSID != 5 || cmd.CDW10 != 1000 || cmd.CDW12 != 7 ||
		cmd.DataLen != 4096 || cmd.Addr != uint64(uintptr(unsafe.Pointer(&q.Buffer(2)[0]))) {
		t.Errorf("nvme command: %+v", *cmd)
	}
	// Abandon the request rather than submit it: there is no device behind fd 0.
	q.pending = 0

	// Status decoding: a positive CQE result is the NVMe status field.
	err = q.result(&r, int32(spec.MakeStatus(spec.SCTGeneric, spec.SCLBAOutOfRange)))
	if err == nil || err.Error() != "io_uring-passthru: write at offset 512000 len 4096: LBA out of range (sct 0, sc 0x80)" {
		t.Errorf("NVMe status: %v", err)
	}
	err = q.result(&r, -int32(unix.EIO))
	if !errors.Is(err, unix.EIO) || err.Error() != "io_uring-passthru: write at offset 512000 len 4096: input/output error" {
		t.Errorf("errno: %v", err)
	}
	if q.result(&r, 0) != nil {
		t.Errorf("status 0 is success")
	}
}

// TestOptionalSetupFlagsFallBack: a setup flag the kernel rejects (here one no kernel
// knows) is dropped, the ring works, and the reason is recorded.
func TestOptionalSetupFlagsFallBack(t *testing.T) {
	requireURing(t)
	const unknown = 1 << 30
	r, err := newRing(ringConfig{entries: 8, cqEntries: 16, optional: unknown | setupCoopTaskrun})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if r.refused&unknown == 0 || r.flags&unknown != 0 {
		t.Fatalf("refused %#x, in effect %#x: the unknown flag should be refused", r.refused, r.flags)
	}
	if note := r.setupNote(); !strings.Contains(note, "0x40000000") || !strings.Contains(note, "kernel too old") {
		t.Errorf("setup note %q", note)
	}
	ok, err := newRing(ringConfig{entries: 8, cqEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer ok.close()
	if note := ok.setupNote(); note != "" {
		t.Errorf("nothing optional asked, yet note %q", note)
	}
}

// TestBusyPollEntersOnlyWhenNeeded: a busy-polling queue with I/O in flight and nothing
// to submit enters the kernel only when it has completion work (IORING_SQ_TASKRUN), not
// on every empty poll.
func TestBusyPollEntersOnlyWhenNeeded(t *testing.T) {
	p := tempFile(t)
	// Real data, synced, so reads reach the disk (unwritten blocks would complete at once).
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := os.Open(p); err == nil {
		_ = f.Sync()
		f.Close()
	}
	tg, err := Open(p, Options{Size: 1 << 20, BusyPoll: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	q, c := openQueue(t, tg, target.QueueConfig{Depth: 4, IOSize: 4096})
	uq := q.(*queue)
	if !uq.taskrunFlag {
		t.Skipf("kernel without COOP_TASKRUN+TASKRUN_FLAG: %s", uq.SetupNote())
	}
	const ios = 200
	polls := 0
	start := uq.r.enters
	for i := 0; i < ios; i++ {
		r := &target.Request{Op: target.OpRead, Offset: uint64(i%256) * 4096, Length: 4096, Buf: 0}
		if err := q.Submit(r); err != nil {
			t.Fatal(err)
		}
		for len(c.done) <= i {
			if _, err := q.Poll(); err != nil {
				t.Fatal(err)
			}
			polls++
		}
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	// Each I/O needs one enter to submit and at most one to run its completion work.
	if enters := uq.r.enters - start; enters > 2*ios+8 {
		t.Errorf("%d io_uring_enter calls for %d I/Os over %d polls: empty polls enter the kernel", enters, ios, polls)
	}
}

// TestPerPollSubmitsInChunks: with the per-poll doorbell, Submit hands SQEs to the
// kernel in chunks of 2, 4, 8, ... (restarting at 2 after each Poll), so the first of a
// poll's resubmissions reach the device at once and the rest in a few calls; only the
// remainder waits for Poll. One io_uring_enter per poll (or one per 2 SQEs) fails.
func TestPerPollSubmitsInChunks(t *testing.T) {
	p := tempFile(t)
	tg, err := Open(p, Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	const n = 2 + 4 + 8 + 3
	q, c := openQueue(t, tg, target.QueueConfig{Depth: 32, IOSize: 4096, Doorbell: target.DoorbellPerPoll})
	uq := q.(*queue)
	start := uq.r.enters
	// enters after each submission: at 2, 6 and 14 filled SQEs.
	want := []int{0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3}
	reqs := make([]target.Request, n+3)
	for i := range n {
		reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(i) * 4096, Length: 4096, Buf: i}
		if err := q.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
		if enters := int(uq.r.enters - start); enters != want[i] {
			t.Fatalf("after %d submissions: %d io_uring_enter calls; want %d", i+1, enters, want[i])
		}
	}
	if uq.pending != 3 {
		t.Fatalf("after %d submissions: %d SQEs pending; want 3", n, uq.pending)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(c.done) < n {
		if _, err := q.Poll(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests completed within 30 s", len(c.done), n)
		}
	}
	// After a Poll the chunk starts again at 2.
	start = uq.r.enters
	for i := n; i < n+3; i++ {
		reqs[i] = target.Request{Op: target.OpRead, Offset: uint64(i) * 4096, Length: 4096, Buf: i}
		if err := q.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if enters := uq.r.enters - start; enters != 1 || uq.pending != 1 {
		t.Fatalf("3 submissions after a Poll: %d io_uring_enter calls, %d pending; want 1 and 1", enters, uq.pending)
	}
	for len(c.done) < n+3 {
		if _, err := q.Poll(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests completed within 30 s", len(c.done), n+3)
		}
	}
	for i := range reqs {
		if reqs[i].Err != nil {
			t.Errorf("request %d: %v", i, reqs[i].Err)
		}
	}
}
