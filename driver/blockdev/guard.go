package blockdev

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// This file is the one place that decides whether nvmeperf may write to a path: a
// target of a write workload, or a report file (--output). Decisions are made on what a
// path names, never on its spelling: a path is resolved to its inode (device and inode
// number, following symlinks, so /dev/disk/by-id/..., /proc/self/fd/N and hard links
// name the same object) or, for devices, to its device number.

// Object is what a path names.
type Object struct {
	Path string // as given
	// Mode is the file type bits (unix.S_IFREG, S_IFBLK, S_IFCHR, S_IFDIR, ...).
	Mode uint32
	// Dev and Ino identify a file (any kind: the inode of a device node too).
	Dev, Ino uint64
	// Rdev is the device number of a block or character device.
	Rdev uint64
}

// Resolve stats path, following symlinks.
func Resolve(path string) (Object, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Object{}, err
	}
	return objectOf(path, &st), nil
}

func objectOf(path string, st *unix.Stat_t) Object {
	return Object{Path: path, Mode: st.Mode & unix.S_IFMT, Dev: st.Dev, Ino: st.Ino, Rdev: st.Rdev}
}

// Same reports whether a and b are the same object (the same file, or the same device).
func (a Object) Same(b Object) bool {
	if a.isDevice() || b.isDevice() {
		return a.Mode == b.Mode && a.Rdev == b.Rdev
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func (a Object) isDevice() bool { return a.Mode == unix.S_IFBLK || a.Mode == unix.S_IFCHR }

// RefusedError is a refusal to write: the path, what it is, and why writing would
// destroy something.
type RefusedError struct {
	Path     string
	Role     string // "write workload on", "--output"
	Findings []string
	// Overridable says --allow-destructive lifts the refusal.
	Overridable bool
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("refusing to write to %s: %s", e.Path, strings.Join(e.Findings, "; "))
	if e.Overridable {
		msg += "; a write workload would destroy it (--allow-destructive overrides)"
	}
	return msg
}

// ErrRefused matches every *RefusedError with errors.Is.
var ErrRefused = errors.New("blockdev: refusing to write")

// Is makes errors.Is(err, ErrRefused) and errors.Is(err, ErrInUse) match.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused || target == ErrInUse }

// Guard decides whether paths may be written, knowing the run's targets.
type Guard struct {
	targets []Object
	pending []string // absolute paths of targets that do not exist yet (files to create)
}

// AddTarget records a target of the run. A path that does not exist yet (a file nvmeperf
// will create) names nothing and is skipped.
func (g *Guard) AddTarget(path string) error {
	o, err := Resolve(path)
	if errors.Is(err, unix.ENOENT) {
		g.pending = append(g.pending, absClean(path))
		return nil
	}
	if err != nil {
		return fmt.Errorf("blockdev: %s: %w", path, err)
	}
	g.targets = append(g.targets, o)
	return nil
}

func absClean(path string) string {
	dir, file := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	abs, err := filepath.Abs(filepath.Join(dir, file))
	if err != nil {
		return filepath.Clean(path)
	}
	return abs
}

// CheckTargetWrite decides whether a write workload may run on the target at path:
// nil, or a *RefusedError that --allow-destructive overrides. A block device (or the
// namespace behind an NVMe generic device) must not be mounted, partitioned, held by
// device mapper/RAID/LVM, open exclusively, or carry a partition table, file system or
// volume signature. A regular file must not back a loop device, be in use as swap, or
// hold a file system or partition table image. A path that does not exist is fine (it
// will be created).
func (g *Guard) CheckTargetWrite(path string) error {
	o, err := Resolve(path)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("blockdev: %s: %w", path, err)
	}
	var findings []string
	switch o.Mode {
	case unix.S_IFREG:
		findings, err = fileFindings(o)
	case unix.S_IFBLK, unix.S_IFCHR:
		err = CheckWritable(path)
		var iu *InUseError
		if errors.As(err, &iu) {
			findings, err = iu.Findings, nil
		}
		if err == nil && o.Mode == unix.S_IFBLK {
			findings = append(findings, loopSiblingFindings(o)...)
		}
	default:
		return fmt.Errorf("blockdev: %s: not a regular file, block device or NVMe generic device", path)
	}
	if err != nil {
		return err
	}
	if len(findings) > 0 {
		return &RefusedError{Path: path, Role: "write workload on", Findings: findings, Overridable: true}
	}
	return nil
}

// CheckOutput decides whether a report may be written to path, before it is opened.
// There is no override: a report never goes to a target of the run, a block device, a
// character device other than /dev/null or a terminal, a directory, a file backing a
// loop device or swap, or a file that holds a file system or partition table image. A
// new file, an existing ordinary file, a pipe or a socket is fine.
func (g *Guard) CheckOutput(path string) error {
	o, err := Resolve(path)
	if errors.Is(err, unix.ENOENT) {
		abs := absClean(path)
		for _, p := range g.pending {
			if p == abs {
				return &RefusedError{Path: path, Role: "--output", Findings: []string{"it is a target of this run (a file to be created)"}}
			}
		}
		return nil // a new file
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return g.checkOutputObject(o)
}

func (g *Guard) checkOutputObject(o Object) error {
	refuse := func(findings ...string) error {
		return &RefusedError{Path: o.Path, Role: "--output", Findings: findings}
	}
	for _, t := range g.targets {
		if o.Same(t) {
			return refuse(fmt.Sprintf("it is the target %s of this run (the same %s)", t.Path, kindName(t.Mode)))
		}
	}
	switch o.Mode {
	case unix.S_IFREG:
		findings, err := fileFindings(o)
		if err != nil {
			return err
		}
		// A loop device among the targets backed by this file is named above by
		// fileFindings ("it backs /dev/loopN").
		if len(findings) > 0 {
			return refuse(findings...)
		}
		return nil
	case unix.S_IFBLK:
		return refuse("it is a block device; a report is written to a file")
	case unix.S_IFCHR:
		if harmlessChar(o.Rdev) {
			return nil
		}
		return refuse("it is a character device; a report is written to a file (or /dev/null, a terminal, a pipe)")
	case unix.S_IFDIR:
		return refuse("it is a directory; give a file name")
	}
	return nil // FIFO or socket: nothing is stored
}

// harmlessChar reports whether a character device stores nothing: /dev/null and
// terminals (tty, console, ptmx, pseudo-terminals).
func harmlessChar(rdev uint64) bool {
	maj, min := unix.Major(rdev), unix.Minor(rdev)
	switch {
	case maj == 1 && min == 3: // /dev/null
		return true
	case maj == 4 || maj == 5 || (maj >= 136 && maj <= 143): // ttys, console, ptmx, pts
		return true
	}
	return false
}

func kindName(mode uint32) string {
	switch mode {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFCHR:
		return "character device"
	}
	return "object"
}

// fileFindings lists why writing to (or truncating) the regular file o destroys
// something: it backs loop devices (with what is on them), it is a swap file, or it
// holds a file system or partition table image (truncating an image destroys it as
// surely as writing into it).
func fileFindings(o Object) ([]string, error) {
	var findings []string
	loops, err := loopsBackedBy(o)
	if err != nil {
		return nil, err
	}
	for _, l := range loops {
		f := fmt.Sprintf("it backs the loop device /dev/%s", l)
		if use, err := inspectUse(l, filepath.Join("/dev", l)); err == nil && len(use) > 0 {
			f += " (" + strings.Join(use, "; ") + ")"
		}
		findings = append(findings, f)
	}
	if swap, err := isSwapFile(o); err != nil {
		return nil, err
	} else if swap {
		findings = append(findings, "it is in use as swap (/proc/swaps)")
	}
	sigs, err := ReadSignatures(o.Path)
	if err != nil && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
		return nil, err
	}
	for _, s := range sigs {
		findings = append(findings, "it holds "+s)
	}
	return findings, nil
}

// loopsBackedBy lists the loop devices (kernel names, sorted) whose backing file is o.
// It asks each attached loop device for the device and inode number of its backing file
// (LOOP_GET_STATUS64), which holds whatever path the file was attached under, and also
// compares the backing_file path sysfs shows (needed where a file system reports a
// different device number to stat, such as btrfs subvolumes).
func loopsBackedBy(o Object) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(sysRoot, "block"))
	if err != nil {
		return nil, nil // no sysfs view: no loop devices to know about
	}
	var loops []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "loop") {
			continue
		}
		backing := readString(filepath.Join(sysRoot, "block", name, "loop", "backing_file"))
		if backing == "" {
			continue // not attached
		}
		if loopBackedBy(name, backing, o) {
			loops = append(loops, name)
		}
	}
	sort.Strings(loops)
	return loops, nil
}

func loopBackedBy(name, backing string, o Object) bool {
	if fd, err := unix.Open(filepath.Join("/dev", name), unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		info, err := unix.IoctlLoopGetStatus64(fd)
		unix.Close(fd)
		if err == nil && info.Inode == o.Ino &&
			unix.Major(info.Device) == unix.Major(o.Dev) && unix.Minor(info.Device) == unix.Minor(o.Dev) {
			return true
		}
	}
	if b, err := Resolve(strings.TrimSuffix(backing, " (deleted)")); err == nil && b.Mode == unix.S_IFREG && b.Same(o) {
		return true
	}
	return false
}

// swapsPath is a variable so tests can point it at a fake table.
var swapsPath = "/proc/swaps"

// isSwapFile reports whether the regular file o is an active swap file.
func isSwapFile(o Object) (bool, error) {
	f, err := os.Open(swapsPath)
	if err != nil {
		return false, nil // no /proc/swaps: no swap
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[1] != "file" {
			continue
		}
		if s, err := Resolve(unescapeMount(fields[0])); err == nil && s.Same(o) {
			return true, nil
		}
	}
	return false, sc.Err()
}

// OpenOutput opens path for a report after CheckOutput-style checks on the opened file
// itself (so a path swapped between check and open cannot slip through): it is created
// when missing, and an existing file is truncated only once it passed. created says the
// file did not exist before, so a caller that fails before writing can remove it.
func (g *Guard) OpenOutput(path string) (f *os.File, created bool, err error) {
	if err := g.CheckOutput(path); err != nil {
		return nil, false, err
	}
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return nil, false, err
	}
	// Opening for writing without O_TRUNC touches no data; only truncation would.
	f, err = os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, false, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	if err := g.checkOutputObject(objectOf(path, &st)); err != nil {
		f.Close()
		return nil, false, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size > 0 {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
	}
	return f, false, nil
}

// CheckOpened re-checks an output opened before the targets were: a target created or
// resolved since (a file of --size) must not be the output either.
func (g *Guard) CheckOpened(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	o := objectOf(f.Name(), &st)
	for _, t := range g.targets {
		if o.Same(t) {
			return &RefusedError{Path: f.Name(), Role: "--output", Findings: []string{fmt.Sprintf("it is the target %s of this run", t.Path)}}
		}
	}
	return nil
}

// File types of Object.Mode, named for callers that do not import x/sys/unix.
const (
	ModeFile  = unix.S_IFREG
	ModeBlock = unix.S_IFBLK
	ModeChar  = unix.S_IFCHR
)

// CheckStream applies the output rules to an already open stream (stdout or stderr as
// the shell opened it): it must not be a target, a block device, a file backing
// anything or a file system image. Unlike an --output path it was opened (and perhaps
// truncated) by someone else, so this only keeps nvmeperf from writing into it.
func (g *Guard) CheckStream(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil // a closed or odd stream: writes to it fail on their own
	}
	o := objectOf(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), &st)
	if o.Mode == unix.S_IFREG && st.Size == 0 {
		// An empty file (> report.txt) holds nothing; only a target match matters.
		for _, t := range g.targets {
			if o.Same(t) {
				return &RefusedError{Path: f.Name(), Role: "stream", Findings: []string{fmt.Sprintf("it is the target %s of this run", t.Path)}}
			}
		}
		return nil
	}
	if err := g.checkOutputObject(o); err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			re.Path = f.Name()
		}
		return err
	}
	return nil
}

// loopSiblingFindings: writing a loop device writes its backing file, which another
// loop device (mounted, say) may also be attached to, or which may be swap.
func loopSiblingFindings(o Object) []string {
	name, err := sysfsName("block", o.Rdev)
	if err != nil || !strings.HasPrefix(name, "loop") {
		return nil
	}
	backing := readString(filepath.Join(sysRoot, "block", name, "loop", "backing_file"))
	if backing == "" {
		return nil
	}
	b, err := Resolve(strings.TrimSuffix(backing, " (deleted)"))
	if err != nil || b.Mode != unix.S_IFREG {
		return nil
	}
	var findings []string
	loops, _ := loopsBackedBy(b)
	for _, l := range loops {
		if l == name {
			continue
		}
		f := fmt.Sprintf("its backing file %s also backs /dev/%s", backing, l)
		if use, err := inspectUse(l, filepath.Join("/dev", l)); err == nil && len(use) > 0 {
			f += " (" + strings.Join(use, "; ") + ")"
		}
		findings = append(findings, f)
	}
	if swap, _ := isSwapFile(b); swap {
		findings = append(findings, fmt.Sprintf("its backing file %s is in use as swap", backing))
	}
	return findings
}
