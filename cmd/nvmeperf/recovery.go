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

// recoveryOpts are the command timeout flags (docs/recovery.md).
type recoveryOpts struct {
	ioTimeout, adminTimeout string
	io, admin               time.Duration
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
	a.recovery.admin, err = parse("admin-timeout", a.recovery.adminTimeout)
	return err
}

// recoveryDriverOptions applies the timeouts to controller bring-up.
func (a *app) recoveryDriverOptions(o *driver.Options) {
	o.NVMe.Recovery.IOTimeout = a.recovery.io
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
