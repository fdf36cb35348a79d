// Package looptest creates loop devices for tests that need a real block device: a file
// in the test's temporary directory attached with losetup, detached at cleanup. Tests
// skip, saying why, where loop devices are unavailable (no root, no losetup, no loop
// driver, a file system without O_DIRECT).
package looptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Options shape the device.
type Options struct {
	// Partscan asks the kernel to scan the device for partitions (losetup -P).
	Partscan bool
	// SectorSize is the logical block size; 0 leaves the default (512).
	SectorSize int
	// Init, if set, writes the backing file's initial contents before it is attached.
	Init func(f *os.File) error
}

// New attaches a loop device of size bytes, backed by a file in t.TempDir with direct
// I/O on, and returns its path (/dev/loopN).
func New(t testing.TB, size int64, opt Options) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		t.Skip("losetup not installed")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("no loop driver: %v", err)
	}
	file := filepath.Join(t.TempDir(), "loop.img")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if opt.Init != nil {
		if err := opt.Init(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	args := []string{"-f", "--show", "--direct-io=on"}
	if opt.Partscan {
		args = append(args, "-P")
	}
	if opt.SectorSize != 0 {
		args = append(args, "--sector-size", strconv.Itoa(opt.SectorSize))
	}
	out, err := exec.Command(losetup, append(args, file)...).CombinedOutput()
	if err != nil {
		t.Skipf("losetup %s: %v: %s", strings.Join(args, " "), err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}
