package workload

import (
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/verify"
)

func storeTarget(capacity uint64) *fakeTarget {
	ft := newFakeTarget("mem", capacity, 512)
	ft.store = make([]byte, capacity)
	return ft
}

func TestVerifyWriteCheck(t *testing.T) {
	const capacity = 64 * 4096
	ft := storeTarget(capacity)
	cfg := Config{Pattern: RandRW, ReadPercent: 50, IOSize: 4096, QueueDepth: 8, NumIOs: 4000, Duration: 10 * time.Second,
		Seed: 11, Verify: VerifyWriteCheck}
	res := run(t, cfg, ft)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	v := res.Jobs[0].Verify
	reads := res.Jobs[0].Read.IOs
	if reads == 0 || v.Checked != reads*8 || v.Mismatched != 0 || len(v.First) != 0 {
		t.Errorf("%d reads: verify %+v, want %d blocks checked and no mismatch", reads, v, reads*8)
	}
	// Every block the run wrote carries the pattern of its own LBA and the seed.
	written := 0
	for lba := uint64(0); lba < capacity/512; lba++ {
		block := ft.store[lba*512 : (lba+1)*512]
		if ok, m := verify.CheckBlock(block, lba, 11); !ok {
			if m.Kind != verify.KindUnwritten {
				t.Fatalf("store: %v", m)
			}
			continue
		}
		written++
	}
	if written == 0 {
		t.Error("no block in the store carries the verify pattern")
	}
}

func TestVerifyReadOnly(t *testing.T) {
	const capacity = 32 * 4096
	ft := storeTarget(capacity)
	// Nothing written yet: every block reads as zeros, which read-only mode reports.
	cfg := Config{Pattern: RandRead, IOSize: 4096, QueueDepth: 4, NumIOs: 100, Duration: 10 * time.Second, Seed: 5, Verify: VerifyReadOnly}
	res := run(t, cfg, ft)
	v := res.Jobs[0].Verify
	if res.Err != nil || v.Checked != 800 || v.Unwritten != 800 || v.Mismatched != 0 || len(v.First) != maxVerifyReports ||
		!strings.Contains(v.First[0], "never written") {
		t.Fatalf("unwritten device: err %v verify %+v", res.Err, v)
	}

	// Write the whole device sequentially with the pattern, then read it back.
	w := Config{Pattern: Write, IOSize: 4096, QueueDepth: 4, NumIOs: 32, Duration: 10 * time.Second, Seed: 5, Verify: VerifyWriteCheck}
	if res := run(t, w, ft); res.Err != nil {
		t.Fatal(res.Err)
	}
	res = run(t, cfg, ft)
	v = res.Jobs[0].Verify
	if res.Err != nil || v.Checked != 800 || v.Unwritten != 0 || v.Mismatched != 0 {
		t.Errorf("written device: err %v verify %+v", res.Err, v)
	}
	if ft.completed.Load() != 232 { // 100 + 32 + 100: read-only wrote nothing extra
		t.Errorf("target completed %d I/Os", ft.completed.Load())
	}

	// A corrupted byte is found and named.
	ft.store[7*512+100] ^= 0xff
	cfg.Pattern, cfg.NumIOs = Read, 32
	res = run(t, cfg, ft)
	v = res.Jobs[0].Verify
	if v.Mismatched != 1 || len(v.First) != 1 || !strings.Contains(v.First[0], "LBA 7 offset 100") {
		t.Errorf("corrupted block: verify %+v", v)
	}

	// Another seed's data does not pass.
	cfg.Seed = 6
	res = run(t, cfg, ft)
	if v := res.Jobs[0].Verify; v.Mismatched != 256 {
		t.Errorf("wrong seed: %d of 256 blocks mismatched", v.Mismatched)
	}
}

func TestVerifyRejectsSmallLBA(t *testing.T) {
	cfg := Config{Pattern: RandRead, IOSize: 4096, QueueDepth: 1, Duration: time.Second, Verify: VerifyWriteCheck}
	res := run(t, cfg, newFakeTarget("tiny", 1<<20, 32))
	if res.Err == nil || !strings.Contains(res.Err.Error(), "LBA size 32") {
		t.Errorf("verify on 32-byte LBAs: %v", res.Err)
	}
}

func TestVerifyNoAllocationsPerIO(t *testing.T) {
	ft := storeTarget(1 << 20)
	cfg := Config{Pattern: RandRW, ReadPercent: 50, IOSize: 4096, QueueDepth: 16, Duration: time.Hour, Verify: VerifyWriteCheck}
	w := newTestWorker(t, cfg, ft)
	defer w.closeQueues()
	for i := 0; i < 100; i++ {
		w.step()
	}
	if allocs := testing.AllocsPerRun(500, func() { w.step() }); allocs != 0 {
		t.Errorf("%v allocations per loop iteration in verify mode, want 0", allocs)
	}
	if v := w.jobs[0].verify; v.Checked == 0 || v.Mismatched != 0 {
		t.Errorf("verify %+v", v)
	}
}

// TestVerifyWriteCheckIgnoresForeignData: in write-check mode a random read may land on
// a block this run has not written, holding anything the device had before — data of
// another program or another seed's pattern. Such blocks are not mismatches; a block
// with this run's header and wrong bytes is.
func TestVerifyWriteCheckIgnoresForeignData(t *testing.T) {
	const capacity = 16 * 4096
	ft := storeTarget(capacity)
	for i := range ft.store[:capacity/2] {
		ft.store[i] = byte(i*7 + 1) // foreign data, no verify header
	}
	verify.Fill(ft.store[capacity/2:], 512, capacity/2/512, 999) // another seed's pattern
	cfg := Config{Pattern: RandRead, IOSize: 4096, QueueDepth: 4, NumIOs: 200, Duration: 10 * time.Second,
		Seed: 3, Verify: VerifyWriteCheck}
	res := run(t, cfg, ft)
	v := res.Jobs[0].Verify
	if res.Err != nil || v.Checked != 1600 || v.Mismatched != 0 || v.Unwritten != 1600 {
		t.Fatalf("foreign data: err %v verify %+v, want 1600 blocks counted unwritten", res.Err, v)
	}
	// This run's pattern with a flipped byte is corruption.
	verify.Fill(ft.store[:4096], 512, 0, 3)
	ft.store[3*512+77] ^= 0x10
	cfg.Pattern, cfg.NumIOs = Read, 1
	res = run(t, cfg, ft)
	v = res.Jobs[0].Verify
	if v.Mismatched != 1 || len(v.First) != 1 || !strings.Contains(v.First[0], "LBA 3 offset 77") {
		t.Fatalf("corrupted block of this run: verify %+v", v)
	}
}
