package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nvmeperf/nvmeperf/driver"
	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/workload"
)

// recoveryOpts are the command timeout and controller recovery flags (docs/recovery.md).
type recoveryOpts struct {
	ioTimeout, adminTimeout string
	io, admin               time.Duration
	recover                 bool
	maxResets               int
}

// Bounds of the timeout flags: below a millisecond the coarse timeout clock cannot
// tell; above an hour is surely a typo.
const (
	minCommandTimeout = time.Millisecond
	maxCommandTimeout = time.Hour
)

func (a *app) registerRecoveryFlags(f *pflag.FlagSet) {
	f.StringVar(&a.recovery.ioTimeout, "io-timeout", "", "userspace NVMe: abort an I/O command outstanding longer than this (e.g. 5s); the controller fails if the abort does not work; default no timeout")
	f.StringVar(&a.recovery.adminTimeout, "admin-timeout", "", "userspace NVMe: how long an admin command may take before the controller is taken as failed (default 10s)")
	f.BoolVar(&a.recovery.recover, "recover", false, "userspace NVMe: reset a failed controller and go on (I/O outstanding then fails and is counted; needs -Q)")
	f.IntVar(&a.recovery.maxResets, "max-resets", nvme.DefaultMaxResets, "with --recover: resets of one controller before it counts as failed for good")
}

// recoveryBefore checks the timeout flags before anything is opened.
func (a *app) recoveryBefore() error {
	parse := func(flag, val string) (time.Duration, error) {
		if val == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(val)
		if err != nil || d < minCommandTimeout || d > maxCommandTimeout {
			return 0, usagef("--%s %s: want a duration from %v to %v such as 500ms or 30s", flag, val, minCommandTimeout, maxCommandTimeout)
		}
		return d, nil
	}
	var err error
	if a.recovery.io, err = parse("io-timeout", a.recovery.ioTimeout); err != nil {
		return err
	}
	if a.recovery.admin, err = parse("admin-timeout", a.recovery.adminTimeout); err != nil {
		return err
	}
	if a.recovery.maxResets < 1 || a.recovery.maxResets > 1000 {
		return usagef("--max-resets %d: want 1 to 1000", a.recovery.maxResets)
	}
	if a.opts.set("max-resets") && !a.recovery.recover {
		return usagef("--max-resets %d: only means something with --recover", a.recovery.maxResets)
	}
	if a.recovery.recover && !a.opts.continueOnErr {
		return usagef("--recover needs -Q (--continue-on-error): the I/O outstanding when a controller fails completes with errors, which would otherwise end the run")
	}
	return nil
}

// recoveryDriverOptions applies the timeouts to controller bring-up.
func (a *app) recoveryDriverOptions(o *driver.Options) {
	o.NVMe.Recovery.IOTimeout = a.recovery.io
	o.NVMe.Recovery.Recover = a.recovery.recover
	o.NVMe.Recovery.MaxResets = a.recovery.maxResets
	if a.recovery.admin > 0 {
		o.NVMe.AdminTimeout = a.recovery.admin
	}
}

// recoveryConfig lets the drain at the end of a run outlast an I/O timeout and the
// Abort that follows it, so a command that hangs near the end is still aborted and
// counted instead of being abandoned by the drain.
func (a *app) recoveryConfig(cfg *workload.Config) {
	if a.recovery.io == 0 {
		return
	}
	admin := a.recovery.admin
	if admin == 0 {
		admin = 10 * time.Second
	}
	need := 2*a.recovery.io + admin + time.Second
	if cfg.DrainTimeout == 0 && need > workload.DefaultDrainTimeout {
		cfg.DrainTimeout = need
	}
}

// recoveryNotices says on stderr what the recovery machinery did to each controller.
func (a *app) recoveryNotices(targets []target.Target) {
	seen := map[*nvme.Controller]bool{}
	for _, t := range targets {
		nt, ok := t.(*nvme.NamespaceTarget)
		if !ok {
			continue
		}
		c := nt.Namespace().Controller()
		if seen[c] {
			continue
		}
		seen[c] = true
		counts := map[string]int{}
		for _, k := range []nvme.EventKind{nvme.EventTimeout, nvme.EventAbort} {
			if n := c.EventCount(k); n > 0 {
				counts[string(k)] = n
			}
		}
		if n := c.Resets(); n > 0 {
			counts["reset"] = n
		}
		if len(counts) == 0 {
			continue
		}
		var parts []string
		for k, n := range counts {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
		sort.Strings(parts)
		a.notice("%s: recovery events: %s", targetLabel(t.Info()), strings.Join(parts, ", "))
	}
}
