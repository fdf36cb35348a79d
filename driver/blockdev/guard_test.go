package blockdev

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/blockdev/looptest"
)

// backingFile is the file behind a loop device looptest attached.
func backingFile(t *testing.T, dev string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantRefused(t *testing.T, what string, err error, words ...string) {
	t.Helper()
	var re *RefusedError
	if !errors.As(err, &re) || !errors.Is(err, ErrRefused) {
		t.Errorf("%s: err = %v, want a refusal", what, err)
		return
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %q does not say %q", what, err, w)
		}
	}
}

// TestOutputNeverATarget: whatever path names a target (itself, a symlink, a hard link,
// /proc/self/fd), a report is not written over it.
func TestOutputNeverATarget(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data.img")
	writeFile(t, data, make([]byte, 1<<20))
	link := filepath.Join(dir, "link.img")
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard.img")
	if err := os.Link(data, hard); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var g Guard
	if err := g.AddTarget(data); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{data, link, hard, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), dir + "/./data.img"} {
		wantRefused(t, p, g.CheckOutput(p), "it is the target "+data)
		if _, _, err := g.OpenOutput(p); err == nil {
			t.Errorf("OpenOutput(%s) succeeded", p)
		}
	}
	if st, _ := os.Stat(data); st.Size() != 1<<20 {
		t.Errorf("target is now %d bytes", st.Size())
	}
	// A target file that does not exist yet (to be created with --size) is refused by
	// path, and CheckOpened catches it once it exists.
	newTarget := filepath.Join(dir, "new.img")
	if err := g.AddTarget(newTarget); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "to-be-created target", g.CheckOutput(filepath.Join(dir, "sub", "..", "new.img")), "target")
	out, created, err := g.OpenOutput(filepath.Join(dir, "report.json"))
	if err != nil || !created {
		t.Fatalf("new output: %v created %v", err, created)
	}
	defer out.Close()
	if err := g.CheckOpened(out); err != nil {
		t.Errorf("CheckOpened on an unrelated file: %v", err)
	}
	if err := g.AddTarget(filepath.Join(dir, "report.json")); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "CheckOpened", g.CheckOpened(out), "target")
}

func TestOutputAcceptsOrdinaryPlaces(t *testing.T) {
	dir := t.TempDir()
	var g Guard
	old := filepath.Join(dir, "old.json")
	writeFile(t, old, []byte("previous report"))
	for _, p := range []string{filepath.Join(dir, "new.json"), old, "/dev/null"} {
		f, created, err := g.OpenOutput(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		f.Close()
		if created != (p == filepath.Join(dir, "new.json")) {
			t.Errorf("%s: created = %v", p, created)
		}
	}
	if b, _ := os.ReadFile(old); len(b) != 0 {
		t.Errorf("existing output not truncated: %q", b)
	}
	wantRefused(t, "directory", g.CheckOutput(dir), "directory")
	wantRefused(t, "/dev/zero", g.CheckOutput("/dev/zero"), "character device")
	// A file holding a file system image is not truncated for a report.
	img := filepath.Join(dir, "fs.img")
	b := make([]byte, signatureSpan)
	copy(b[0:], "XFSB")
	writeFile(t, img, b)
	wantRefused(t, "image", g.CheckOutput(img), "XFS")
	wantRefused(t, "image as a write target", g.CheckTargetWrite(img), "XFS", "--allow-destructive")
}

func TestSwapFileRefused(t *testing.T) {
	dir := t.TempDir()
	swap := filepath.Join(dir, "swapfile")
	writeFile(t, swap, make([]byte, 8192))
	table := filepath.Join(dir, "swaps")
	writeFile(t, table, []byte("Filename\tType\tSize\tUsed\tPriority\n"+swap+"\tfile\t8\t0\t-2\n/dev/sda9\tpartition\t8\t0\t-3\n"))
	old := swapsPath
	swapsPath = table
	defer func() { swapsPath = old }()
	var g Guard
	wantRefused(t, "swap as output", g.CheckOutput(swap), "swap")
	wantRefused(t, "swap as target", g.CheckTargetWrite(swap), "swap")
}

// TestLoopBackingFile: the file behind a loop device is neither a write target nor an
// output, under any name; the loop device itself is never an output.
func TestLoopBackingFile(t *testing.T) {
	dev := looptest.New(t, 8<<20, looptest.Options{})
	file := backingFile(t, dev)
	alias := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(file, alias); err != nil {
		t.Fatal(err)
	}
	var g Guard
	for _, p := range []string{file, alias} {
		wantRefused(t, "backing file as target "+p, g.CheckTargetWrite(p), "backs the loop device "+dev, "--allow-destructive")
		wantRefused(t, "backing file as output "+p, g.CheckOutput(p), "backs the loop device "+dev)
	}
	devLink := filepath.Join(t.TempDir(), "by-id-link")
	if err := os.Symlink(dev, devLink); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dev, devLink} {
		wantRefused(t, "loop device as output "+p, g.CheckOutput(p), "block device")
	}
	// An empty loop device is a fine write target.
	if err := g.CheckTargetWrite(dev); err != nil {
		t.Errorf("empty loop device: %v", err)
	}
	// Once it holds a file system, it is refused through every name.
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	if out, err := exec.Command(mkfs, "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	for _, p := range []string{dev, devLink} {
		wantRefused(t, "ext4 loop device "+p, g.CheckTargetWrite(p), "ext2/3/4")
	}
	wantRefused(t, "backing file of an ext4 loop", g.CheckTargetWrite(file), "backs the loop device", "ext2/3/4")
}

// TestMountedLoopBackingFile is the case: a write workload on the file behind a
// mounted loop device would destroy the mounted file system.
func TestMountedLoopBackingFile(t *testing.T) {
	dev := looptest.New(t, 16<<20, looptest.Options{})
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	if out, err := exec.Command(mkfs, "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	var g Guard
	wantRefused(t, "backing file of a mounted loop", g.CheckTargetWrite(backingFile(t, dev)), "backs the loop device", "mounted on "+mnt)
}

// TestLoopSiblingMounted: writing one loop device writes its backing file; when another
// loop device on the same file is mounted, that destroys the mounted file system.
func TestLoopSiblingMounted(t *testing.T) {
	dev := looptest.New(t, 16<<20, looptest.Options{})
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	file := backingFile(t, dev)
	out, err := exec.Command("losetup", "-f", "--show", file).CombinedOutput()
	if err != nil {
		t.Skipf("a second loop device on the same file: %v: %s", err, out)
	}
	sibling := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", sibling).Run() })
	// Even an idle sibling is reason to refuse, as for a backing file (overridable).
	var g Guard
	wantRefused(t, "idle sibling", g.CheckTargetWrite(dev), "also backs "+sibling, "--allow-destructive")
	if out, err := exec.Command(mkfs, "-q", "-F", sibling).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "ro", sibling, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	wantRefused(t, "loop device whose file is mounted through another", g.CheckTargetWrite(dev), "also backs "+sibling, "mounted on "+mnt)
}
