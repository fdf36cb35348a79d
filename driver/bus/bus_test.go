package bus

import (
	"runtime"
	"testing"
	"unsafe"

	"github.com/nvmeperf/nvmeperf/driver/bus/bustest"
)

type access struct {
	off   uint32
	width int
	write bool
}

type recorder struct{ log []access }

func (r *recorder) ObserveAccess(off uint32, width int, write bool) {
	r.log = append(r.log, access{off, width, write})
}

func newTestMMIO(t *testing.T, size int) (*MMIO, []uint32) {
	t.Helper()
	back := make([]uint64, size/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&back[0])), size)
	m, err := NewMMIO(mem)
	if err != nil {
		t.Fatal(err)
	}
	words := unsafe.Slice((*uint32)(unsafe.Pointer(&back[0])), size/4)
	return m, words
}

// 64-bit registers are two 32-bit accesses, low dword first, as Linux's lo_hi helpers
// do: controllers may reject (or mis-handle) 8-byte MMIO.
func TestRead64Write64LowThenHigh(t *testing.T) {
	m, words := newTestMMIO(t, 4096)
	var rec recorder
	m.SetObserver(&rec)
	m.Write64(0x28, 0x1122334455667788)
	if words[0x28/4] != 0x55667788 || words[0x2C/4] != 0x11223344 {
		t.Fatalf("Write64 stored %#x %#x, want low dword 0x55667788 at 0x28 and high 0x11223344 at 0x2c", words[0x28/4], words[0x2C/4])
	}
	if got := m.Read64(0x28); got != 0x1122334455667788 {
		t.Fatalf("Read64 = %#x, want 0x1122334455667788", got)
	}
	want := []access{{0x28, 4, true}, {0x2C, 4, true}, {0x28, 4, false}, {0x2C, 4, false}}
	if len(rec.log) != len(want) {
		t.Fatalf("accesses %+v, want %+v", rec.log, want)
	}
	for i := range want {
		if rec.log[i] != want[i] {
			t.Fatalf("access %d is %+v, want %+v (all: %+v)", i, rec.log[i], want[i], rec.log)
		}
	}
	// The package helpers give the same order on any Registers.
	rec.log = nil
	Write64(m, 0x30, 1)
	if rec.log[0].off != 0x30 || rec.log[1].off != 0x34 {
		t.Fatalf("Write64 helper order %+v, want 0x30 then 0x34", rec.log)
	}
}

func TestPrimitivesMoveTheValue(t *testing.T) {
	m, words := newTestMMIO(t, 8192)
	p := m.Reg32(0x1008)
	Store32(p, 0xDEADBEEF)
	if words[0x1008/4] != 0xDEADBEEF {
		t.Fatalf("Store32 wrote %#x", words[0x1008/4])
	}
	if Load32(p) != 0xDEADBEEF || LoadAcquire32(p) != 0xDEADBEEF || m.Read32(0x1008) != 0xDEADBEEF {
		t.Fatal("loads do not return the stored value")
	}
}

func TestBadOffsetPanics(t *testing.T) {
	m, _ := newTestMMIO(t, 4096)
	for _, f := range []func(){func() { m.Read32(4096) }, func() { m.Read32(2) }, func() { m.Write64(4, 0) }} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("out-of-range or unaligned access did not panic")
				}
			}()
			f()
		}()
	}
}

// The doorbell store must be a plain MOV to memory, never a locked instruction: QEMU
// (and any PCIe device) sees XCHG as a read of the write-only doorbell plus a write.
func TestStoreIsPlainMove(t *testing.T) {
	funcs := bustest.Disassemble(t, `driver/bus\.((store32|load32)(\.abi0)?|\(\*MMIO\)\.(Write32|Read32))$`)
	for _, name := range []string{"store32", "load32", "(*MMIO).Write32", "(*MMIO).Read32"} {
		full := "github.com/nvmeperf/nvmeperf/driver/bus." + name
		ins, ok := funcs[full]
		if !ok {
			t.Fatalf("%s not found in the test binary's disassembly (have %v)", full, keysOf(funcs))
		}
		for _, in := range ins {
			if bustest.LockedRMW.MatchString(in) {
				t.Errorf("%s contains %q: register accesses must be plain loads/stores", name, in)
			}
		}
	}
	store := funcs["github.com/nvmeperf/nvmeperf/driver/bus.store32"]
	switch runtime.GOARCH {
	case "amd64":
		if !bustest.ContainsMatch(store, `^MOVL [A-Z0-9]+, [-0-9a-fx]*\(`) {
			t.Errorf("store32 has no 32-bit MOV to memory: %q", store)
		}
	case "arm64":
		if !bustest.ContainsMatch(store, `^DMB`) || !bustest.ContainsMatch(store, `^MOVW R[0-9]+, [-0-9a-fx]*\(`) {
			t.Errorf("store32 lacks DMB then a 32-bit store: %q", store)
		}
	}
}

func keysOf(m map[string][]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

// CopyToMMIO64 copies whole words, in order, and only the n asked for.
func TestCopyToMMIO64(t *testing.T) {
	src := [9]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}
	var dst [9]uint64
	CopyToMMIO64(&dst[0], &src[0], 8)
	if want := [9]uint64{1, 2, 3, 4, 5, 6, 7, 8, 0}; dst != want {
		t.Fatalf("%v, want %v", dst, want)
	}
	CopyToMMIO64(&dst[0], &src[8], 0)
	if dst[0] != 1 {
		t.Fatal("n=0 stored")
	}
}
