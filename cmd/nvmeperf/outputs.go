package main

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/blockdev"
)

// outputPath is a file or directory a subcommand will write (--output, --csv, --plot,
// --junit), checked before any work starts so a long sweep never ends in an unwritable
// path, and never a path that names one of the run's targets or inputs.
type outputPath struct {
	flag string
	path string
	// files, for a directory flag (--plot), are the names written into it; empty for a
	// file flag.
	files []string
}

// checkOutputs fails with a usage error naming the flag when an output cannot be
// written, is not a regular file (or, for --plot, a directory), is refused by the write
// guard (a target or input of the run however it is spelled, a device, a file backing a
// loop device or holding a file system: blockdev.Guard, the one place that decides), or
// names the same file as another output.
func checkOutputs(outs []outputPath, targets []string) error {
	g := &blockdev.Guard{}
	for _, t := range targets {
		if err := g.AddTarget(t); err != nil {
			return usagef("%s: %v", t, err)
		}
	}
	type written struct{ flag, path string }
	var all []written
	for _, o := range outs {
		if o.path == "" {
			continue
		}
		if o.files == nil {
			if err := checkOutputFile(o.flag, o.path); err != nil {
				return err
			}
			all = append(all, written{o.flag, o.path})
			continue
		}
		if err := checkOutputDir(o.flag, o.path); err != nil {
			return err
		}
		for _, name := range o.files {
			p := filepath.Join(o.path, name)
			if fi, err := os.Stat(p); err == nil && !fi.Mode().IsRegular() {
				return usagef("%s %s: %s exists and is not a regular file", o.flag, o.path, p)
			}
			all = append(all, written{o.flag, p})
		}
	}
	for i, w := range all {
		if err := g.CheckOutput(w.path); err != nil {
			return usagef("%s %s: %v", w.flag, w.path, err)
		}
		for _, v := range all[:i] {
			if samePath(w.path, v.path) {
				return usagef("%s %s: is also the file of %s; give each output its own file", w.flag, w.path, v.flag)
			}
		}
	}
	return nil
}

func checkOutputFile(flag, path string) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return usagef("%s %s: is a directory; want a file to write", flag, path)
	case err == nil && !fi.Mode().IsRegular():
		return usagef("%s %s: is not a regular file (a device, pipe or socket); want a file to write", flag, path)
	case err == nil:
		if unix.Access(path, unix.W_OK) != nil {
			return usagef("%s %s: not writable", flag, path)
		}
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return usagef("%s %s: %v", flag, path, err)
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil || !di.IsDir() {
		return usagef("%s %s: directory %s does not exist", flag, path, dir)
	}
	if unix.Access(dir, unix.W_OK) != nil {
		return usagef("%s %s: directory %s is not writable", flag, path, dir)
	}
	return nil
}

// checkOutputDir accepts an existing writable directory, or a path whose nearest
// existing ancestor is a writable directory (it is created when the plots are
// written).
func checkOutputDir(flag, dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return usagef("%s %s: %s is not a directory", flag, dir, p)
			}
			if unix.Access(p, unix.W_OK) != nil {
				return usagef("%s %s: %s is not writable", flag, dir, p)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return usagef("%s %s: %v", flag, dir, err)
		}
		if next := filepath.Dir(p); next == p {
			return usagef("%s %s: no existing parent directory", flag, dir)
		}
	}
}

// samePath reports whether a and b name the same file: the same inode when both exist,
// else the same absolute path once the directories' symlinks are resolved.
func samePath(a, b string) bool {
	ai, aerr := os.Stat(a)
	bi, berr := os.Stat(b)
	if aerr == nil && berr == nil {
		return os.SameFile(ai, bi)
	}
	return canonical(a) == canonical(b)
}

func canonical(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	dir, base := filepath.Split(abs)
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		return filepath.Join(d, base)
	}
	return abs
}

// plotFiles are the files --plot writes for a sweep (sweep) or a run.
func plotFiles(format string, sweep bool) []string {
	if sweep {
		return []string{"iops." + format, "latency." + format}
	}
	return []string{"percentiles." + format}
}
