package nvmeioctl

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
)

// ControllerRef names a controller the kernel NVMe driver owns.
type ControllerRef struct {
	Name string // kernel name, e.g. "nvme0"
	Path string // its character device, e.g. "/dev/nvme0"
	Dev  string // its device number "major:minor" as sysfs has it
}

// sysRoot and devRoot are variables so tests can point them at a fake tree.
var (
	sysRoot = "/sys"
	devRoot = "/dev"
)

// Kernel device names of the NVMe driver. With native multipath the visible namespace
// (nvme<subsystem>n<head>, ng<subsystem>n<head>) belongs to a subsystem, and each path
// to it is a hidden disk nvme<subsystem>c<controller>n<head> under its controller; the
// number in a namespace's name is then the subsystem's, not a controller's, so the
// controller is found by where the device sits in sysfs, never by its name.
var (
	controllerName = regexp.MustCompile(`^nvme[0-9]+$`)
	nsBlockName    = regexp.MustCompile(`^nvme[0-9]+(?:c[0-9]+)?n[0-9]+$`)
	nsCharName     = regexp.MustCompile(`^ng[0-9]+(?:c[0-9]+)?n[0-9]+$`)
	subsystemName  = regexp.MustCompile(`^nvme-subsys[0-9]+$`)
)

// Controllers finds the controllers behind path: an NVMe namespace's block device
// (/dev/nvmeXnY, or a symlink such as /dev/disk/by-id/nvme-...), one of its partitions
// (the SMART log is the controller's, so a partition maps to its disk's controller), its
// generic character device (/dev/ngXnY), or a controller device (/dev/nvmeX) itself. A
// multipath namespace head yields the controller of each of its paths, in name order.
// A regular file, or a device of another driver, gives an error wrapping ErrNotNVMe.
func Controllers(path string) ([]ControllerRef, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("nvmeioctl: %s: %w", path, err)
	}
	var class string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		class = "block"
	case unix.S_IFCHR:
		class = "char"
	case unix.S_IFREG:
		return nil, fmt.Errorf("nvmeioctl: %s is a regular file: %w", path, ErrNotNVMe)
	default:
		return nil, fmt.Errorf("nvmeioctl: %s is not a device (mode %#o): %w", path, st.Mode&unix.S_IFMT, ErrNotNVMe)
	}
	refs, err := controllersOfDevice(class, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	if err != nil {
		return nil, fmt.Errorf("nvmeioctl: %s: %w", path, err)
	}
	return refs, nil
}

// controllersOfDevice is Controllers for the device numbered major:minor of class
// "block" or "char".
func controllersOfDevice(class string, major, minor uint32) ([]ControllerRef, error) {
	link := filepath.Join(sysRoot, "dev", class, fmt.Sprintf("%d:%d", major, minor))
	dir, err := filepath.EvalSymlinks(link)
	if err != nil {
		return nil, fmt.Errorf("finding %s device %d:%d in sysfs: %w", class, major, minor, err)
	}
	name := filepath.Base(dir)
	switch class {
	case "block":
		if exists(filepath.Join(dir, "partition")) {
			dir = filepath.Dir(dir) // a partition's directory sits in its disk's
			name = filepath.Base(dir)
		}
		if !nsBlockName.MatchString(name) {
			return nil, fmt.Errorf("block device %s is not an NVMe namespace: %w", name, ErrNotNVMe)
		}
	case "char":
		if controllerName.MatchString(name) && exists(filepath.Join(dir, "dev")) {
			return []ControllerRef{refOf(dir)}, nil
		}
		if !nsCharName.MatchString(name) {
			return nil, fmt.Errorf("character device %s is not an NVMe controller or generic namespace device: %w", name, ErrNotNVMe)
		}
	}
	return controllersOfNamespace(dir)
}

// controllersOfNamespace finds the controllers of the namespace device (block or
// generic) whose sysfs directory is dir.
func controllersOfNamespace(dir string) ([]ControllerRef, error) {
	name, parent := filepath.Base(dir), filepath.Dir(dir)
	if isController(parent) {
		return []ControllerRef{refOf(parent)}, nil
	}
	if !subsystemName.MatchString(filepath.Base(parent)) {
		return nil, fmt.Errorf("%s sits under neither an NVMe controller nor an NVMe subsystem in sysfs (%s)", name, parent)
	}
	// A multipath namespace head. Its block device lists its paths in multipath/; the
	// generic device of the same head (ng<subsys>n<head>) has none, so ask its block
	// sibling (nvme<subsys>n<head>).
	head := dir
	if rest, ok := strings.CutPrefix(name, "ng"); ok {
		head = filepath.Join(parent, "nvme"+rest)
	}
	var refs []ControllerRef
	seen := map[string]bool{}
	add := func(ctrl string) {
		if isController(ctrl) && !seen[filepath.Base(ctrl)] {
			seen[filepath.Base(ctrl)] = true
			refs = append(refs, refOf(ctrl))
		}
	}
	paths, _ := os.ReadDir(filepath.Join(head, "multipath"))
	for _, p := range paths {
		if real, err := filepath.EvalSymlinks(filepath.Join(head, "multipath", p.Name())); err == nil {
			add(filepath.Dir(real)) // a path disk nvmeXcYnZ sits in its controller's directory
		}
	}
	if len(refs) == 0 {
		// No path listed (an older kernel, or all paths gone): every controller of the
		// subsystem, which links each one by name.
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			if controllerName.MatchString(e.Name()) {
				if real, err := filepath.EvalSymlinks(filepath.Join(parent, e.Name())); err == nil {
					add(real)
				}
			}
		}
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("multipath namespace %s has no controller in sysfs", name)
	}
	return refs, nil
}

// isController reports whether dir is an NVMe controller's sysfs directory.
func isController(dir string) bool {
	return controllerName.MatchString(filepath.Base(dir)) && exists(filepath.Join(dir, "dev"))
}

func refOf(dir string) ControllerRef {
	name := filepath.Base(dir)
	dev, _ := os.ReadFile(filepath.Join(dir, "dev"))
	return ControllerRef{Name: name, Path: filepath.Join(devRoot, name), Dev: strings.TrimSpace(string(dev))}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// OpenRef opens the controller's character device and checks that it is the device
// sysfs names (a stale or hand-made /dev node would send the command elsewhere).
func OpenRef(ref ControllerRef) (*Controller, error) {
	c, err := Open(ref.Path)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(c.fd, &st); err == nil && ref.Dev != "" {
		if got := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)); got != ref.Dev {
			c.Close()
			return nil, fmt.Errorf("nvmeioctl: %s is device %s, but sysfs says controller %s is %s", ref.Path, got, ref.Name, ref.Dev)
		}
	}
	return c, nil
}
