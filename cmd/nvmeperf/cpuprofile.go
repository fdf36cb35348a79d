package main

// --cpuprofile: a runtime/pprof CPU profile of the run, for users who want to see where
// a run's CPU goes (go tool pprof nvmeperf FILE).

import (
	"io"
	"runtime/pprof"

	"github.com/spf13/pflag"
)

// perfOpts are the options about nvmeperf's own cost.
type perfOpts struct {
	cpuProfile string
	profile    *sideOutput // the opened --cpuprofile file
}

func (a *app) registerPerfFlags(f *pflag.FlagSet) {
	f.StringVar(&a.perf.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the run to FILE (go tool pprof); never one of the targets")
}

// openCPUProfile opens --cpuprofile before any target, under --output's rules (never a
// target, a device or a file backing one; checked again once the targets exist).
func (a *app) openCPUProfile() error {
	if a.perf.cpuProfile == "" {
		return nil
	}
	o, err := a.openSideOutput("--cpuprofile", a.perf.cpuProfile)
	if err != nil {
		return err
	}
	a.perf.profile = o
	return nil
}

// startCPUProfile starts profiling into the opened file; the returned function stops
// it and closes the file. Without --cpuprofile both do nothing.
func (a *app) startCPUProfile() func() error {
	o := a.perf.profile
	if o == nil || o.f == nil {
		return func() error { return nil }
	}
	startErr := pprof.StartCPUProfile(o.f)
	return func() error {
		return o.write(func(io.Writer) error {
			if startErr != nil {
				return startErr
			}
			pprof.StopCPUProfile() // flushes the rest of the profile into o.f
			return nil
		})
	}
}
