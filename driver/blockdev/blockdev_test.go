package blockdev

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/blockdev/looptest"
)

func TestMatchSignaturesEachEntry(t *testing.T) {
	for _, s := range signatures {
		b := make([]byte, signatureSpan)
		copy(b[s.offset:], s.magic)
		got := MatchSignatures(b)
		if len(got) != 1 || !strings.HasPrefix(got[0], s.what+" (magic ") {
			t.Errorf("%s at %d: got %q", s.what, s.offset, got)
		}
	}
}

func TestMatchSignaturesNothing(t *testing.T) {
	if got := MatchSignatures(make([]byte, signatureSpan)); len(got) != 0 {
		t.Errorf("zeroed device: got %q", got)
	}
	if got := MatchSignatures(nil); len(got) != 0 {
		t.Errorf("empty device: got %q", got)
	}
	// Random data, as a previous write benchmark leaves behind, must not look like a
	// file system; the validators reject the short magics' chance matches.
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, signatureSpan)
	found := 0
	for i := 0; i < 40; i++ {
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		copy(b[1080:], "\x53\xef") // the ext magic by chance, with random block size
		binary.LittleEndian.PutUint32(b[1024+24:], 7+rng.Uint32()%1000)
		b[510], b[511] = 0x55, 0xaa // 0x55AA by chance, with random boot flags
		b[446] = 0x13
		found += len(MatchSignatures(b))
	}
	if found != 0 {
		t.Errorf("%d signatures found in random data", found)
	}
}

func TestMatchSignaturesMessage(t *testing.T) {
	b := make([]byte, signatureSpan)
	copy(b[1080:], "\x53\xef")
	binary.LittleEndian.PutUint32(b[1024+24:], 2) // 4 KiB blocks
	copy(b[0:], "LUKS\xba\xbe")
	got := strings.Join(MatchSignatures(b), "; ")
	for _, want := range []string{"an ext2/3/4 file system (magic 53 ef at byte 1080)", `a LUKS encrypted volume (magic 4c 55 4b 53 ba be at byte 0)`} {
		if !strings.Contains(got, want) {
			t.Errorf("got %q, want it to contain %q", got, want)
		}
	}
	b = make([]byte, signatureSpan)
	copy(b[65600:], "_BHRfS_M")
	if got := MatchSignatures(b); len(got) != 1 || got[0] != `a btrfs file system (magic "_BHRfS_M" at byte 65600)` {
		t.Errorf("btrfs: got %q", got)
	}
}

func TestGenericNames(t *testing.T) {
	for _, c := range []struct {
		ng, blk string
		ok      bool
	}{{"ng0n1", "nvme0n1", true}, {"ng12n34", "nvme12n34", true}, {"nvme0n1", "", false}, {"ng0", "", false}, {"sda", "", false}} {
		blk, ok := GenericToBlock(c.ng)
		if blk != c.blk || ok != c.ok {
			t.Errorf("GenericToBlock(%q) = %q, %v; want %q, %v", c.ng, blk, ok, c.blk, c.ok)
		}
		if ok {
			if ng, ok := BlockToGeneric(blk); !ok || ng != c.ng {
				t.Errorf("BlockToGeneric(%q) = %q, %v", blk, ng, ok)
			}
		}
	}
}

// fakeSysfs builds a sysfs tree with an NVMe namespace nvme1n2 (4 KiB blocks), its
// partition nvme1n2p1 and the controller attributes, and points the package at it.
func fakeSysfs(t *testing.T) string {
	root := t.TempDir()
	write := func(p, v string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	disk := "devices/pci0000:00/0000:00:04.0/nvme/nvme1/nvme1n2"
	write(disk+"/queue/logical_block_size", "4096")
	write(disk+"/queue/max_sectors_kb", "512")
	write(disk+"/size", "2097152")
	write(disk+"/nsid", "2")
	write(disk+"/dev", "259:3")
	write(disk+"/nvme1n2p1/partition", "1")
	write(disk+"/nvme1n2p1/size", "2048")
	write(disk+"/nvme1n2p1/dev", "259:4")
	write("devices/pci0000:00/0000:00:04.0/nvme/nvme1/model", "QEMU NVMe Ctrl                          ")
	write("devices/pci0000:00/0000:00:04.0/nvme/nvme1/serial", "deadbeef            ")
	write("devices/pci0000:00/0000:00:04.0/nvme/nvme1/firmware_rev", "9.1.0   ")
	if err := os.Symlink("../../nvme1", filepath.Join(root, "devices/pci0000:00/0000:00:04.0/nvme/nvme1/nvme1n2/device")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "class/block"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"nvme1n2": disk, "nvme1n2p1": disk + "/nvme1n2p1"} {
		if err := os.Symlink(filepath.Join("../..", target), filepath.Join(root, "class/block", name)); err != nil {
			t.Fatal(err)
		}
	}
	old := sysRoot
	sysRoot = root
	t.Cleanup(func() { sysRoot = old })
	return root
}

func TestInspectBlockSysfs(t *testing.T) {
	fakeSysfs(t)
	info, err := inspectBlock("nvme1n2")
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Kind: KindBlock, Name: "nvme1n2", BlockName: "nvme1n2", LBASize: 4096, Capacity: 2097152 * 512,
		MaxTransfer: 512 << 10, Model: "QEMU NVMe Ctrl", Serial: "deadbeef", Firmware: "9.1.0", NSID: 2}
	if info != want {
		t.Errorf("got %+v\nwant %+v", info, want)
	}
	part, err := inspectBlock("nvme1n2p1")
	if err != nil {
		t.Fatal(err)
	}
	if !part.Partition || part.LBASize != 4096 || part.Capacity != 2048*512 || part.Model != "QEMU NVMe Ctrl" {
		t.Errorf("partition: got %+v", part)
	}
	if _, err := inspectBlock("nvme9n9"); err == nil || !strings.Contains(err.Error(), "nvme9n9") {
		t.Errorf("missing device: err = %v", err)
	}
}

func TestMountsOf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mountinfo")
	lines := "22 1 259:2 / / rw,relatime - ext4 /dev/nvme0n1p2 rw\n" +
		"40 22 259:4 / /mnt/my\\040data rw - xfs /dev/nvme1n2p1 rw\n" +
		"41 22 0:55 / /srv rw - btrfs /dev/does-not-exist rw\n"
	if err := os.WriteFile(p, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	old := mountInfoPath
	mountInfoPath = p
	defer func() { mountInfoPath = old }()
	got, err := mountsOf(map[string]string{"259:3": "nvme1n2", "259:4": "nvme1n2p1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "nvme1n2p1 is mounted on /mnt/my data" {
		t.Errorf("got %q", got)
	}
}

func TestInspectFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, 12288), 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != KindFile || info.Capacity != 12288 || info.LBASize == 0 || info.LBASize&(info.LBASize-1) != 0 {
		t.Errorf("got %+v", info)
	}
	if err := CheckWritable(p); err != nil {
		t.Errorf("a regular file is writable: %v", err)
	}
	if _, err := Inspect(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: err = %v", err)
	}
	if _, err := Inspect("/dev/null"); err == nil || !strings.Contains(err.Error(), "not an NVMe generic device") {
		t.Errorf("/dev/null: err = %v", err)
	}
}

func TestLoopDevice(t *testing.T) {
	dev := looptest.New(t, 32<<20, looptest.Options{SectorSize: 4096})
	info, err := Inspect(dev)
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != KindBlock || info.LBASize != 4096 || info.Capacity != 32<<20 || info.Name != filepath.Base(dev) {
		t.Errorf("got %+v", info)
	}
	if err := CheckWritable(dev); err != nil {
		t.Errorf("a zeroed loop device is writable: %v", err)
	}
}

func wantRefusal(t *testing.T, dev string, wants ...string) {
	t.Helper()
	err := CheckWritable(dev)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("CheckWritable(%s) = %v, want a refusal", dev, err)
	}
	msg := err.Error()
	for _, w := range append(wants, dev, "--allow-destructive") {
		if !strings.Contains(msg, w) {
			t.Errorf("refusal %q does not mention %q", msg, w)
		}
	}
}

func TestLoopDeviceWithFilesystem(t *testing.T) {
	dev := looptest.New(t, 32<<20, looptest.Options{})
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		// Without mkfs, the superblock magic alone is what CheckWritable looks for.
		f, err := os.OpenFile(dev, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		sb := make([]byte, 4096)
		copy(sb[1080:], "\x53\xef")
		if _, err := f.WriteAt(sb, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
	} else if out, err := exec.Command(mkfs, "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	wantRefusal(t, dev, "ext2/3/4 file system", "at byte 1080")

	if _, err := exec.LookPath("mount"); err != nil || mkfs == "" {
		return
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		t.Logf("mount not possible here, skipping the mounted case: %v: %s", err, out)
		return
	}
	defer exec.Command("umount", mnt).Run()
	wantRefusal(t, dev, "is mounted on "+mnt)
}

// writeMBR lays out a DOS partition table with one Linux partition from sector 2048.
func writeMBR(f *os.File) error {
	mbr := make([]byte, 512)
	e := mbr[446:]
	e[4] = 0x83 // Linux
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], 8192)
	mbr[510], mbr[511] = 0x55, 0xaa
	_, err := f.WriteAt(mbr, 0)
	return err
}

func TestLoopDeviceWithPartitionTable(t *testing.T) {
	dev := looptest.New(t, 16<<20, looptest.Options{Partscan: true, Init: writeMBR})
	// Some kernels (or sandboxes) do not scan loop devices for partitions; the table is
	// still found by its signature.
	part := filepath.Join("/sys/class/block", filepath.Base(dev), filepath.Base(dev)+"p1")
	if _, err := os.Stat(part); err != nil {
		t.Logf("the kernel did not scan %s for partitions; checking the table signature only", dev)
		wantRefusal(t, dev, "MBR partition table")
		return
	}
	wantRefusal(t, dev, "MBR partition table", "it has partitions ("+filepath.Base(dev)+"p1)")
	// The partition itself is empty and unused: writable.
	if _, err := os.Stat(dev + "p1"); err == nil {
		if err := CheckWritable(dev + "p1"); err != nil {
			t.Errorf("empty partition: %v", err)
		}
		info, err := Inspect(dev + "p1")
		if err != nil || !info.Partition || info.Capacity != 8192*512 {
			t.Errorf("partition info %+v, %v", info, err)
		}
	}
}

func TestLoopDeviceOpenExclusively(t *testing.T) {
	dev := looptest.New(t, 8<<20, looptest.Options{})
	f, err := os.OpenFile(dev, os.O_RDONLY|syscall.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wantRefusal(t, dev, "open exclusively by another program")
}
