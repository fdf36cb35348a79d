package nvmeioctl

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeSysfs builds a sysfs tree as the kernel NVMe driver lays it out:
//
//   - nvme0 (PCIe 0000:00:04.0, not multipath): nvme0n1 with partition nvme0n1p1, ng0n1
//   - subsystem nvme-subsys1 with controllers nvme1 and nvme2 (native multipath): the
//     head nvme1n1 and ng1n1 with the hidden paths nvme1c1n1 and nvme1c2n1
//   - subsystem nvme-subsys3 whose head lists no paths, only the controller nvme3
//   - loop0, a block device of another driver; /dev/null, a character device.
func fakeSysfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	file := func(p, content string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, target string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	c0 := "devices/pci0000:00/0000:00:04.0/nvme/nvme0"
	file(c0+"/dev", "242:0")
	file(c0+"/serial", "lab-kernel")
	file(c0+"/nvme0n1/dev", "259:0")
	file(c0+"/nvme0n1/nvme0n1p1/dev", "259:1")
	file(c0+"/nvme0n1/nvme0n1p1/partition", "1")
	file(c0+"/ng0n1/dev", "240:0")
	link("dev/char/242:0", "../../"+c0)
	link("dev/block/259:0", "../../"+c0+"/nvme0n1")
	link("dev/block/259:1", "../../"+c0+"/nvme0n1/nvme0n1p1")
	link("dev/char/240:0", "../../"+c0+"/ng0n1")

	c1 := "devices/pci0000:00/0000:00:05.0/nvme/nvme1"
	c2 := "devices/pci0000:00/0000:00:06.0/nvme/nvme2"
	s1 := "devices/virtual/nvme-subsystem/nvme-subsys1"
	file(c1+"/dev", "242:1")
	file(c2+"/dev", "242:2")
	file(c1+"/nvme1c1n1/size", "2048") // hidden path disks: no dev
	file(c2+"/nvme1c2n1/size", "2048")
	file(s1+"/subsysnqn", "nqn.test")
	link(s1+"/nvme1", "../../../pci0000:00/0000:00:05.0/nvme/nvme1")
	link(s1+"/nvme2", "../../../pci0000:00/0000:00:06.0/nvme/nvme2")
	file(s1+"/nvme1n1/dev", "259:2")
	link(s1+"/nvme1n1/multipath/nvme1c2n1", "../../../../../pci0000:00/0000:00:06.0/nvme/nvme2/nvme1c2n1")
	link(s1+"/nvme1n1/multipath/nvme1c1n1", "../../../../../pci0000:00/0000:00:05.0/nvme/nvme1/nvme1c1n1")
	file(s1+"/nvme1n1/nvme1n1p2/dev", "259:3")
	file(s1+"/nvme1n1/nvme1n1p2/partition", "2")
	file(s1+"/ng1n1/dev", "240:1")
	link("dev/block/259:2", "../../"+s1+"/nvme1n1")
	link("dev/block/259:3", "../../"+s1+"/nvme1n1/nvme1n1p2")
	link("dev/char/240:1", "../../"+s1+"/ng1n1")

	c3 := "devices/virtual/nvme-fabrics/ctl/nvme3"
	s3 := "devices/virtual/nvme-subsystem/nvme-subsys3"
	file(c3+"/dev", "242:3")
	link(s3+"/nvme3", "../../nvme-fabrics/ctl/nvme3")
	file(s3+"/nvme3n1/dev", "259:4")
	link("dev/block/259:4", "../../"+s3+"/nvme3n1")

	file("devices/virtual/block/loop0/dev", "7:0")
	link("dev/block/7:0", "../../devices/virtual/block/loop0")
	file("devices/virtual/mem/null/dev", "1:3")
	link("dev/char/1:3", "../../devices/virtual/mem/null")

	oldSys, oldDev := sysRoot, devRoot
	sysRoot, devRoot = root, "/dev"
	t.Cleanup(func() { sysRoot, devRoot = oldSys, oldDev })
	return root
}

func TestControllersOfDevice(t *testing.T) {
	fakeSysfs(t)
	nvme := func(n, dev string) ControllerRef {
		return ControllerRef{Name: "nvme" + n, Path: "/dev/nvme" + n, Dev: dev}
	}
	c0 := []ControllerRef{nvme("0", "242:0")}
	mp := []ControllerRef{nvme("1", "242:1"), nvme("2", "242:2")}
	for _, tc := range []struct {
		what         string
		class        string
		major, minor uint32
		want         []ControllerRef
	}{
		{"block namespace", "block", 259, 0, c0},
		{"partition: its disk's controller", "block", 259, 1, c0},
		{"generic character device", "char", 240, 0, c0},
		{"the controller device itself", "char", 242, 0, c0},
		{"multipath head: the controller of each path", "block", 259, 2, mp},
		{"partition of a multipath head", "block", 259, 3, mp},
		{"generic device of a multipath head", "char", 240, 1, mp},
		{"multipath head listing no paths: the subsystem's controllers", "block", 259, 4, []ControllerRef{nvme("3", "242:3")}},
	} {
		got, err := controllersOfDevice(tc.class, tc.major, tc.minor)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s (%s %d:%d): got %+v, %v; want %+v", tc.what, tc.class, tc.major, tc.minor, got, err, tc.want)
		}
	}
}

func TestControllersOfOtherDevices(t *testing.T) {
	fakeSysfs(t)
	for _, tc := range []struct {
		what         string
		class        string
		major, minor uint32
		notNVMe      bool
	}{
		{"loop device", "block", 7, 0, true},
		{"/dev/null", "char", 1, 3, true},
		{"device without sysfs entry", "block", 8, 0, false},
	} {
		got, err := controllersOfDevice(tc.class, tc.major, tc.minor)
		if err == nil || errors.Is(err, ErrNotNVMe) != tc.notNVMe {
			t.Errorf("%s: got %+v, %v; want an error (ErrNotNVMe %v)", tc.what, got, err, tc.notNVMe)
		}
	}
}

// A regular file is not NVMe; a path that does not exist is an error of its own.
func TestControllersOfFiles(t *testing.T) {
	f := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(f, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Controllers(f); !errors.Is(err, ErrNotNVMe) {
		t.Errorf("regular file: %v, want ErrNotNVMe", err)
	}
	if _, err := Controllers(f + ".missing"); err == nil || errors.Is(err, ErrNotNVMe) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing file: %v, want ENOENT", err)
	}
	if _, err := Controllers(t.TempDir()); !errors.Is(err, ErrNotNVMe) {
		t.Errorf("directory: %v, want ErrNotNVMe", err)
	}
}

// Controllers follows symlinks such as /dev/disk/by-id/nvme-... to the device node and
// maps it through sysfs. Needs mknod (root); skipped otherwise.
func TestControllersThroughSymlink(t *testing.T) {
	fakeSysfs(t)
	dev := t.TempDir()
	node := filepath.Join(dev, "nvme0n1p1")
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(259, 1))); err != nil {
		t.Skipf("mknod needs root: %v", err)
	}
	ng := filepath.Join(dev, "ng1n1")
	if err := unix.Mknod(ng, unix.S_IFCHR|0o600, int(unix.Mkdev(240, 1))); err != nil {
		t.Fatal(err)
	}
	byID := filepath.Join(dev, "disk", "by-id")
	if err := os.MkdirAll(byID, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(byID, "nvme-QEMU_NVMe_Ctrl_lab-kernel-part1")
	if err := os.Symlink("../../nvme0n1p1", link); err != nil {
		t.Fatal(err)
	}
	got, err := Controllers(link)
	if want := []ControllerRef{{Name: "nvme0", Path: "/dev/nvme0", Dev: "242:0"}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("by-id symlink to a partition: %+v, %v; want %+v", got, err, want)
	}
	got, err = Controllers(ng)
	if err != nil || len(got) != 2 || got[0].Name != "nvme1" || got[1].Name != "nvme2" {
		t.Errorf("multipath generic device node: %+v, %v", got, err)
	}
}

// OpenRef refuses a /dev node whose device number is not the controller's.
func TestOpenRefChecksDeviceNumber(t *testing.T) {
	_, err := OpenRef(ControllerRef{Name: "nvme0", Path: "/dev/null", Dev: "242:0"})
	if err == nil {
		t.Fatal("opened /dev/null as controller 242:0")
	}
	if _, err := OpenRef(ControllerRef{Name: "nvme9", Path: filepath.Join(t.TempDir(), "nvme9"), Dev: "242:9"}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing node: %v, want ENOENT", err)
	}
}
