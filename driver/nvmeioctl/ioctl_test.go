package nvmeioctl

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// The layout of struct nvme_passthru_cmd, field by field, as the kernel header has it.
func TestAdminCmdLayout(t *testing.T) {
	var c AdminCmd
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"nsid", unsafe.Offsetof(c.NSID), 4},
		{"metadata", unsafe.Offsetof(c.Metadata), 16},
		{"addr", unsafe.Offsetof(c.Addr), 24},
		{"data_len", unsafe.Offsetof(c.DataLen), 36},
		{"cdw10", unsafe.Offsetof(c.CDW10), 40},
		{"cdw15", unsafe.Offsetof(c.CDW15), 60},
		{"timeout_ms", unsafe.Offsetof(c.TimeoutMs), 64},
		{"result", unsafe.Offsetof(c.Result), 68},
		{"size", unsafe.Sizeof(c), 72},
	} {
		if f.got != f.want {
			t.Errorf("%s at %d, want %d", f.name, f.got, f.want)
		}
	}
	if ioctlAdminCmd != 0xC0484E41 {
		t.Errorf("NVME_IOCTL_ADMIN_CMD %#x", ioctlAdminCmd)
	}
}

func TestGetLogPageCommand(t *testing.T) {
	c := getLogPageCmd(spec.LogSMARTHealth, allNamespaces, spec.SMARTLogSize)
	if c.Opcode != 0x02 || c.NSID != 0xFFFFFFFF || c.CDW10 != 0x007F0002 || c.CDW11 != 0 {
		t.Errorf("SMART: %+v, want opcode 02h, NSID FFFFFFFFh, NUMDL 127, LID 02h", c)
	}
	// 0x12345 dwords: NUMD 0x12344 splits into NUMDL 0x2344 and NUMDU 0x1.
	c = getLogPageCmd(spec.LogErrorInformation, 1, 0x12345*4)
	if c.CDW10 != 0x23440001 || c.CDW11 != 0x1 || c.NSID != 1 {
		t.Errorf("large error log read: CDW10 %#x CDW11 %#x", c.CDW10, c.CDW11)
	}
}

// The admin ioctl on a descriptor that is not an NVMe device fails with ErrNotNVMe (the
// kernel answers ENOTTY), never with a status or a panic.
func TestAdminOnNonNVMe(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(f, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := newFromFD(f, fd)
	defer c.Close()
	_, err = c.SMART()
	if !errors.Is(err, ErrNotNVMe) || !errors.Is(err, unix.ENOTTY) {
		t.Errorf("SMART on a regular file: %v, want ErrNotNVMe wrapping ENOTTY", err)
	}
	if _, err := c.ErrorLog(4); !errors.Is(err, ErrNotNVMe) {
		t.Errorf("ErrorLog on a regular file: %v", err)
	}
	if err := c.GetLogPage(2, 1, make([]byte, 6)); err == nil {
		t.Error("a length that is not a multiple of 4 was sent")
	}
	c.Close()
	if _, err := c.SMART(); err == nil {
		t.Error("SMART on a closed controller did not fail")
	}

	// Open takes character devices only; /dev/null is one, and refuses the ioctl.
	if _, err := Open(f); !errors.Is(err, ErrNotNVMe) {
		t.Errorf("Open of a regular file: %v, want ErrNotNVMe", err)
	}
	null, err := Open("/dev/null")
	if err != nil {
		t.Skipf("no /dev/null: %v", err)
	}
	defer null.Close()
	if _, err := null.SMART(); !errors.Is(err, ErrNotNVMe) {
		t.Errorf("SMART on /dev/null: %v, want ErrNotNVMe", err)
	}
}

func TestErrorClassification(t *testing.T) {
	for _, tc := range []struct {
		errno        unix.Errno
		perm, notNVM bool
	}{
		{unix.EACCES, true, false}, {unix.EPERM, true, false}, {unix.ENOTTY, false, true}, {unix.EIO, false, false},
	} {
		err := classify(tc.errno)
		if errors.Is(err, ErrPermission) != tc.perm || errors.Is(err, ErrNotNVMe) != tc.notNVM || !errors.Is(err, tc.errno) {
			t.Errorf("%v: %v", tc.errno, err)
		}
	}
	e := &StatusError{Command: "Get Log Page 0x02", Status: spec.Status(0x4002)}
	if got := e.Error(); got != "Get Log Page 0x02 failed: invalid field in command (sct 0, sc 0x02) [do not retry]" {
		t.Errorf("status error text %q", got)
	}
}
