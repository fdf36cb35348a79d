package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nvmeperf/nvmeperf/driver/blockdev"
	simdev "github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/driver/trid"
	"github.com/nvmeperf/nvmeperf/workload"
)

// What the CLI checks before it opens anything; the decisions themselves live in
// blockdev.Guard (what may be written) and report.Judge (status and exit status).

// kernelOnlyFlags change how io_uring drives a kernel device or file; without one named
// as an argument they would be ignored, so they are a usage error instead.
var kernelOnlyFlags = []string{"size", "sqpoll", "hipri", "passthru"}

// parseTRIDs parses -r and, for the simulated controller, its keys, so that a bad key
// is a usage error (exit 2) before anything starts.
func (a *app) parseTRIDs(p *plan) ([]trid.ID, error) {
	var ids []trid.ID
	for _, s := range a.opts.trids {
		id, err := trid.Parse(s)
		if err != nil {
			return nil, usagef("-r %q: %v", s, err)
		}
		if id.Type == trid.Sim {
			cfg, err := simdev.ParseOptions(id.Options)
			if err != nil {
				return nil, usagef("-r %q: %v", s, err)
			}
			if p.cfg.Verify != workload.VerifyOff && !cfg.StoresData() {
				return nil, usagef("%s with -r %q: the simulated namespaces keep no data (store %s, %d × %d bytes, memlimit %d), so reads return nothing to check; use store:mem or a smaller nssize",
					verifyFlag(p.cfg.Verify), s, cfg.Store, cfg.Namespaces, cfg.NamespaceSize, cfg.MemLimit)
			}
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func verifyFlag(m workload.VerifyMode) string {
	if m == workload.VerifyReadOnly {
		return "--verify-read"
	}
	return "--verify"
}

// writes reports whether the workload writes.
func writes(p *plan) bool {
	c := p.cfg
	return c.Pattern == workload.Write || c.Pattern == workload.RandWrite || (c.Pattern.Mixed() && c.ReadPercent < 100)
}

// checkKernelTargets refuses, before anything is opened: io_uring flags with no kernel
// target, --size on a device, a missing or empty file without --size, and (without
// --allow-destructive) a write workload on anything blockdev.Guard says holds data.
func (a *app) checkKernelTargets(p *plan, paths []string, fileSize int64) error {
	if len(paths) == 0 {
		for _, f := range kernelOnlyFlags {
			if a.opts.set(f) {
				return usagef("--%s applies to kernel devices and files named as arguments (io_uring); no such target was given, so it would be ignored", f)
			}
		}
	}
	a.guard = &blockdev.Guard{}
	for _, path := range paths {
		o, err := blockdev.Resolve(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if fileSize == 0 {
				return usagef("%s does not exist; give --size (e.g. --size 1g) to create it as a file", path)
			}
		case err != nil:
			return fmt.Errorf("%s: %w", path, err)
		case o.Mode == blockdev.ModeFile && fileSize == 0 && isEmptyFile(path):
			return usagef("%s is an empty file; give --size (e.g. --size 1g) to extend it", path)
		case o.Mode != blockdev.ModeFile && a.opts.set("size"):
			return usagef("--size %s: applies to regular files; %s is not one (a device's size is its capacity)", a.opts.fileSize, path)
		}
		if err := a.guard.AddTarget(path); err != nil {
			return err
		}
	}
	if err := a.checkStreams(); err != nil {
		return err
	}
	if writes(p) && !a.opts.allowDestruct {
		for _, path := range paths {
			if err := a.guard.CheckTargetWrite(path); err != nil {
				if errors.Is(err, blockdev.ErrRefused) {
					return usagef("-w %s: %v", p.cfg.Pattern, err)
				}
				return err
			}
		}
	}
	return nil
}

func isEmptyFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Size() == 0
}

// openOutput opens --output before any target, so that a report that cannot be written
// fails at once (exit 2), not after the run.
func (a *app) openOutput() error {
	if a.opts.outputFile != "" {
		f, created, err := a.openGuarded("--output", a.opts.outputFile)
		if err != nil {
			return err
		}
		a.out, a.outCreated = f, created
	}
	if a.compat.jsonOutput != "" {
		if _, err := a.openSideOutput("--json-output", a.compat.jsonOutput); err != nil {
			return err
		}
	}
	return nil
}

// openGuarded opens a file flag's path under --output's rules (exit 2 naming the flag
// when refused or unwritable).
func (a *app) openGuarded(flag, path string) (*os.File, bool, error) {
	f, created, err := a.guard.OpenOutput(path)
	if err != nil {
		var re *blockdev.RefusedError
		if errors.As(err, &re) {
			return nil, false, usagef("%s %s: %v", flag, path, err)
		}
		return nil, false, usagef("%s %s: cannot write there: %v", flag, path, unwrapPathError(err))
	}
	return f, created, nil
}

// sideOutput is a file flag other than --output (--json-output, …). It follows
// --output's rules: opened and checked before any target, checked again once the
// targets exist, and removed when this run created it but wrote nothing into it.
type sideOutput struct {
	flag, path string
	f          *os.File
	created    bool
	written    bool
}

// openSideOutput opens and registers a side output.
func (a *app) openSideOutput(flag, path string) (*sideOutput, error) {
	f, created, err := a.openGuarded(flag, path)
	if err != nil {
		return nil, err
	}
	o := &sideOutput{flag: flag, path: path, f: f, created: created}
	a.sideOutputs = append(a.sideOutputs, o)
	return o, nil
}

// sideOutput returns the opened side output for flag, or nil.
func (a *app) sideOutput(flag string) *sideOutput {
	for _, o := range a.sideOutputs {
		if o.flag == flag {
			return o
		}
	}
	return nil
}

// write fills the side output with what write writes and closes it.
func (o *sideOutput) write(write func(io.Writer) error) error {
	err := write(o.f)
	o.written = true
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	o.f = nil
	if err != nil {
		return fmt.Errorf("%s %s: %w", o.flag, o.path, err)
	}
	return nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkOutputAgainst re-checks the opened report file against the targets now that
// they exist (a file --size just created).
func (a *app) checkOutputAgainst(paths []string) error {
	if a.out == nil && len(a.sideOutputs) == 0 {
		return nil
	}
	for _, path := range paths {
		if err := a.guard.AddTarget(path); err != nil {
			return err
		}
	}
	if a.out != nil {
		if err := a.guard.CheckOpened(a.out); err != nil {
			return usagef("--output %s: %v", a.opts.outputFile, err)
		}
	}
	for _, o := range a.sideOutputs {
		if o.f == nil {
			continue
		}
		if err := a.guard.CheckOpened(o.f); err != nil {
			return usagef("%s %s: %v", o.flag, o.path, err)
		}
	}
	return a.checkStreams()
}

// checkStreams applies the --output rules to stdout and stderr as the shell opened them
// (nvmeperf -w randread data.img >> data.img): a stream that names a target, a block
// device or a file backing anything is silenced and the run refused, so not one byte of
// report or notice lands in it.
func (a *app) checkStreams() error {
	for _, s := range []struct {
		name string
		w    *io.Writer
	}{{"stdout", &a.stdout}, {"stderr", &a.stderr}} {
		f, ok := (*s.w).(*os.File)
		if !ok {
			continue
		}
		if err := a.guard.CheckStream(f); err != nil {
			*s.w = io.Discard
			if a.root != nil {
				a.root.SetOut(a.stdout)
				a.root.SetErr(a.stderr)
			}
			return usagef("%s: %v", s.name, err)
		}
	}
	return nil
}

func (a *app) reportWriter() io.Writer {
	if a.out != nil {
		return a.out
	}
	return a.stdout
}

func (a *app) closeOutput() error {
	if a.out == nil {
		return nil
	}
	err := a.out.Close()
	a.out = nil
	return err
}

// removeCreatedOutput removes the report file this run created when no report went
// into it.
func (a *app) removeCreatedOutput() {
	for _, o := range a.sideOutputs {
		if o.f != nil {
			_ = o.f.Close()
			o.f = nil
		}
		if o.created && !o.written {
			_ = os.Remove(o.path)
			o.created = false
		}
	}
	if !a.outCreated || a.reportWritten {
		return
	}
	a.closeOutput()
	_ = os.Remove(a.opts.outputFile)
	a.outCreated = false
}

// removeCreatedTargets removes the files this run created as targets (--size on a new
// path) when the run did not happen. Files that existed before are never removed.
func (a *app) removeCreatedTargets(targets []target.Target) {
	for _, t := range targets {
		if c, ok := t.(interface{ Created() bool }); ok && c.Created() {
			_ = os.Remove(t.Info().Name)
		}
	}
}

// jsonAsked reports whether JSON output was asked for, reading the raw arguments too,
// so that a flag error before --output-format json is parsed still gives a document.
func (a *app) jsonAsked() bool {
	if a.opts.set != nil && a.opts.set("output-format") {
		return strings.EqualFold(a.opts.outputFormat, "json")
	}
	return scanOutputFormat(a.args[1:]) == "json"
}

// scanOutputFormat finds the last --output-format value in args without cobra (which
// stops at the first bad flag): "--output-format json" or "--output-format=json".
func scanOutputFormat(args []string) string {
	format := ""
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			break
		}
		if v, ok := strings.CutPrefix(arg, "--output-format="); ok {
			format = v
		} else if arg == "--output-format" && i+1 < len(args) {
			format = args[i+1]
			i++
		}
	}
	return strings.ToLower(format)
}
