// Package blockdev describes the kernel devices and files nvmeperf drives through
// io_uring, and decides whether writing to one is safe.
//
// Inspect reads what the report needs from sysfs (logical block size, capacity, model,
// serial, firmware, NSID). CheckWritable refuses a block device that is mounted, held by
// another driver (device mapper, RAID, LVM), partitioned, or carries a partition table or
// a filesystem/volume signature, because a write benchmark would destroy it. Guard
// (guard.go) is the one place that decides whether a path may be written at all — a
// write target or a report file — by what the path names (inode or device number),
// covering loop devices and their backing files, swap files and file system images too.
package blockdev

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Kind is what a path names.
type Kind uint8

// Kinds of path.
const (
	KindFile     Kind = iota // a regular file
	KindBlock                // a block device, e.g. /dev/nvme0n1, /dev/loop0
	KindNVMeChar             // an NVMe generic character device, /dev/ngXnY (passthrough)
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindBlock:
		return "block device"
	case KindNVMeChar:
		return "NVMe generic character device"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Info describes a device or file. Fields that are unknown are zero.
type Info struct {
	Path        string
	Kind        Kind
	Name        string // kernel name, e.g. "nvme0n1", "loop3", "ng0n1"; empty for files
	BlockName   string // the block device of the same namespace ("nvme0n1" for "ng0n1"); Name for block devices
	Partition   bool   // a partition rather than a whole disk
	LBASize     uint32 // logical block size in bytes: the unit of direct I/O
	Capacity    uint64 // bytes
	MaxTransfer uint32 // largest I/O the block layer issues as one request, bytes
	Model       string
	Serial      string
	Firmware    string
	NSID        uint32
}

// sysRoot and mountInfoPath are variables so tests can point them at a fake tree.
var (
	sysRoot       = "/sys"
	mountInfoPath = "/proc/self/mountinfo"
)

// Inspect describes path, which may be a regular file, a block device or an NVMe
// generic character device.
func Inspect(path string) (Info, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Info{}, fmt.Errorf("blockdev: %s: %w", path, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return inspectFile(path, &st)
	case unix.S_IFBLK:
		name, err := sysfsName("block", st.Rdev)
		if err != nil {
			return Info{}, fmt.Errorf("blockdev: %s: %w", path, err)
		}
		info, err := inspectBlock(name)
		if err != nil {
			return Info{}, fmt.Errorf("blockdev: %s: %w", path, err)
		}
		info.Path = path
		return info, nil
	case unix.S_IFCHR:
		name, err := sysfsName("char", st.Rdev)
		if err != nil {
			return Info{}, fmt.Errorf("blockdev: %s: %w", path, err)
		}
		blk, ok := GenericToBlock(name)
		if !ok {
			return Info{}, fmt.Errorf("blockdev: %s: character device %q is not an NVMe generic device (ngXnY)", path, name)
		}
		info, err := inspectBlock(blk)
		if err != nil {
			return Info{}, fmt.Errorf("blockdev: %s: namespace %s: %w", path, blk, err)
		}
		info.Path, info.Kind, info.Name = path, KindNVMeChar, name
		return info, nil
	}
	return Info{}, fmt.Errorf("blockdev: %s: not a regular file, block device or NVMe generic character device (mode %#o)", path, st.Mode&unix.S_IFMT)
}

func inspectFile(path string, st *unix.Stat_t) (Info, error) {
	info := Info{Path: path, Kind: KindFile, Capacity: uint64(st.Size), LBASize: 512}
	// STATX_DIOALIGN (Linux 6.1) gives the file system's direct I/O alignment; older
	// kernels fall back to 512, the smallest sector size.
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_DIOALIGN, &stx); err == nil &&
		stx.Mask&unix.STATX_DIOALIGN != 0 && stx.Dio_offset_align != 0 {
		info.LBASize = stx.Dio_offset_align
	}
	return info, nil
}

// sysfsName resolves a device number to its kernel name through /sys/dev/{block,char}.
func sysfsName(class string, rdev uint64) (string, error) {
	link := filepath.Join(sysRoot, "dev", class, fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev)))
	target, err := os.Readlink(link)
	if err != nil {
		return "", fmt.Errorf("finding the device in sysfs: %w", err)
	}
	return filepath.Base(target), nil
}

var genericName = regexp.MustCompile(`^ng([0-9]+)n([0-9]+)$`)

// GenericToBlock maps an NVMe generic character device name (ng0n1) to the block device
// of the same namespace (nvme0n1).
func GenericToBlock(name string) (string, bool) {
	m := genericName.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	return "nvme" + m[1] + "n" + m[2], true
}

var blockNSName = regexp.MustCompile(`^nvme([0-9]+)n([0-9]+)$`)

// BlockToGeneric maps an NVMe block device name (nvme0n1) to its generic character
// device (ng0n1).
func BlockToGeneric(name string) (string, bool) {
	m := blockNSName.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	return "ng" + m[1] + "n" + m[2], true
}

var nvmeNSName = regexp.MustCompile(`^nvme[0-9]+(?:c[0-9]+)?n([0-9]+)$`)

// inspectBlock reads a block device's attributes from /sys/class/block/<name>.
func inspectBlock(name string) (Info, error) {
	dir := filepath.Join(sysRoot, "class", "block", name)
	if _, err := os.Stat(dir); err != nil {
		return Info{}, fmt.Errorf("no sysfs entry for %s: %w", name, err)
	}
	info := Info{Kind: KindBlock, Name: name, BlockName: name}
	// A partition has no queue/ of its own: its disk's is one directory up.
	disk := dir
	if exists(filepath.Join(dir, "partition")) {
		info.Partition = true
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return Info{}, fmt.Errorf("resolving %s: %w", dir, err)
		}
		disk = filepath.Dir(real)
	}
	lbs, err := readUint(filepath.Join(disk, "queue", "logical_block_size"))
	if err != nil {
		return Info{}, err
	}
	if lbs == 0 || lbs&(lbs-1) != 0 || lbs > 1<<16 {
		return Info{}, fmt.Errorf("%s: logical block size %d is not a power of two up to 65536", name, lbs)
	}
	info.LBASize = uint32(lbs)
	sectors, err := readUint(filepath.Join(dir, "size"))
	if err != nil {
		return Info{}, err
	}
	info.Capacity = sectors * 512 // sysfs size is always in 512-byte units
	if kb, err := readUint(filepath.Join(disk, "queue", "max_sectors_kb")); err == nil && kb*1024 <= 1<<32-1 {
		info.MaxTransfer = uint32(kb * 1024)
	}
	dev := filepath.Join(disk, "device")
	info.Model = readString(filepath.Join(dev, "model"))
	info.Serial = readString(filepath.Join(dev, "serial"))
	info.Firmware = readString(filepath.Join(dev, "firmware_rev"))
	if info.Firmware == "" {
		info.Firmware = readString(filepath.Join(dev, "rev")) // SCSI
	}
	if nsid, err := readUint(filepath.Join(disk, "nsid")); err == nil {
		info.NSID = uint32(nsid)
	} else if m := nvmeNSName.FindStringSubmatch(filepath.Base(disk)); m != nil {
		// Older kernels have no nsid attribute; the name's nN is the NSID.
		n, _ := strconv.ParseUint(m[1], 10, 32)
		info.NSID = uint32(n)
	}
	return info, nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func readString(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readUint(p string) (uint64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", p, err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", p, err)
	}
	return v, nil
}

// InUseError is CheckWritable's refusal: what was found on the device.
type InUseError struct {
	Path     string
	Findings []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("blockdev: refusing to write to %s: %s; a write workload would destroy it (--allow-destructive overrides)",
		e.Path, strings.Join(e.Findings, "; "))
}

// ErrInUse matches every *InUseError with errors.Is.
var ErrInUse = errors.New("blockdev: device in use or holds data")

func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// CheckWritable returns nil when a write workload on path destroys nothing that is
// visibly in use: regular files are always writable (nvmeperf creates or extends them);
// a block device, or the block device behind an NVMe generic character device, must not
// be mounted (itself or a partition), have holders, have partitions, or carry a
// partition table or filesystem/volume signature. A refusal is an *InUseError.
func CheckWritable(path string) error {
	info, err := Inspect(path)
	if err != nil {
		return err
	}
	if info.Kind == KindFile {
		return nil
	}
	devPath := path
	if info.Kind == KindNVMeChar {
		devPath = filepath.Join("/dev", info.BlockName)
		if !exists(filepath.Join(sysRoot, "class", "block", info.BlockName)) {
			return nil // no block device for this namespace: nothing in the kernel can use it
		}
	}
	findings, err := inspectUse(info.BlockName, devPath)
	if err != nil {
		return fmt.Errorf("blockdev: checking %s is unused: %w", path, err)
	}
	if len(findings) > 0 {
		return &InUseError{Path: path, Findings: findings}
	}
	return nil
}

// inspectUse lists why the block device name (at devPath) must not be written.
func inspectUse(name, devPath string) ([]string, error) {
	dir := filepath.Join(sysRoot, "class", "block", name)
	devices := []string{name}
	var findings []string
	if !exists(filepath.Join(dir, "partition")) {
		parts, err := partitions(dir)
		if err != nil {
			return nil, err
		}
		if len(parts) > 0 {
			findings = append(findings, fmt.Sprintf("it has partitions (%s)", strings.Join(parts, ", ")))
		}
		devices = append(devices, parts...)
	}

	// A partition's disk may itself be mounted (a file system on the whole disk next to
	// a stray table) or held (multipath, RAID on the whole disk): writing the
	// partition writes that disk.
	var parent string
	if exists(filepath.Join(dir, "partition")) {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			parent = filepath.Base(filepath.Dir(real))
			devices = append(devices, parent)
		}
	}

	numbers := map[string]string{} // "maj:min" -> name
	for _, d := range devices {
		if n := readString(filepath.Join(sysRoot, "class", "block", d, "dev")); n != "" {
			numbers[n] = d
		}
	}
	mounts, err := mountsOf(numbers)
	if err != nil {
		return nil, err
	}
	findings = append(findings, mounts...)

	for _, d := range devices {
		holders, _ := os.ReadDir(filepath.Join(sysRoot, "class", "block", d, "holders"))
		if len(holders) > 0 {
			var hs []string
			for _, h := range holders {
				hs = append(hs, h.Name())
			}
			findings = append(findings, fmt.Sprintf("%s is held by %s (device mapper, LVM, RAID or similar)", d, strings.Join(hs, ", ")))
		}
	}

	// A device another program opened exclusively (a file system, md, a running
	// benchmark) refuses O_EXCL with EBUSY.
	if fd, err := unix.Open(devPath, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0); err == nil {
		unix.Close(fd)
	} else if errors.Is(err, unix.EBUSY) && len(mounts) == 0 {
		findings = append(findings, "it is open exclusively by another program")
	}

	sigs, err := ReadSignatures(devPath)
	if err != nil {
		return nil, err
	}
	for _, s := range sigs {
		findings = append(findings, "it holds "+s)
	}
	return findings, nil
}

// partitions lists the partitions of the disk whose sysfs directory is dir.
func partitions(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	var parts []string
	for _, e := range entries {
		if exists(filepath.Join(dir, e.Name(), "partition")) {
			parts = append(parts, e.Name())
		}
	}
	return parts, nil
}

// mountsOf lists the mounts of the devices whose "maj:min" numbers are keys of numbers.
// It matches the device number of the mount and, for file systems that report an
// anonymous one (btrfs), the mount source path.
func mountsOf(numbers map[string]string) ([]string, error) {
	f, err := os.Open(mountInfoPath)
	if err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	var found []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		name, ok := numbers[fields[2]]
		if !ok {
			for i, f := range fields {
				if f == "-" && i+2 < len(fields) {
					var st unix.Stat_t
					if unix.Stat(unescapeMount(fields[i+2]), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
						name, ok = numbers[fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))]
					}
					break
				}
			}
		}
		if !ok {
			continue
		}
		mnt := unescapeMount(fields[4])
		if key := name + " " + mnt; !seen[key] {
			seen[key] = true
			found = append(found, fmt.Sprintf("%s is mounted on %s", name, mnt))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	return found, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
