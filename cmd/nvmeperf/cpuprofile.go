package main

// --cpuprofile: a runtime/pprof CPU profile of the run, for users who want to see where
// a run's CPU goes (go tool pprof nvmeperf FILE).

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/spf13/pflag"
)

// perfOpts are the options about nvmeperf's own cost.
type perfOpts struct {
	cpuProfile string
}

func (a *app) registerPerfFlags(f *pflag.FlagSet) {
	f.StringVar(&a.perf.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the run to FILE (go tool pprof); never one of the targets")
}

// checkOutputPath decides whether the file flag names may be created or truncated: it
// must not be one of the targets (by any name: os.SameFile) nor an existing device,
// directory or anything else that is not a regular file. It is the one place the
// profile's path is checked, so a project-wide rule can replace it.
func checkOutputPath(flag, path string, targets []string) error {
	if path == "" {
		return nil
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && !st.Mode().IsRegular():
		return usagef("%s %s: exists and is not a regular file (%v); give a new or regular file", flag, path, st.Mode().Type())
	case err != nil && !os.IsNotExist(err):
		return usagef("%s %s: %v", flag, path, err)
	}
	abs, _ := filepath.Abs(path)
	for _, t := range targets {
		tabs, _ := filepath.Abs(t)
		same := abs == tabs
		if err == nil && !same {
			if tst, terr := os.Stat(t); terr == nil && os.SameFile(st, tst) {
				same = true
			}
		}
		if same {
			return usagef("%s %s: is the benchmark target %s; give another file", flag, path, t)
		}
	}
	return nil
}

// startCPUProfile creates the profile file and starts profiling; the returned function
// stops it and closes the file. With no --cpuprofile it does nothing.
func (a *app) startCPUProfile() (func() error, error) {
	path := a.perf.cpuProfile
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("--cpuprofile %s: %w", path, err)
		}
		return nil
	}, nil
}
