package main

import (
	endian "encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nvmeperf/nvmeperf/driver"
	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/workload"
)

// recoveryOpts are the command timeout and controller recovery flags (docs/recovery.md).
type recoveryOpts struct {
	ioTimeout, adminTimeout string
	io, admin               time.Duration
	recover                 bool
	maxResets               int
	retries                 int
	health                  bool
	noAsyncEvents           bool
	noShadowDoorbell        bool
	noSQCMB                 bool

	// Per controller, in the order first seen: the health snapshot taken before the run.
	ctrls  []*nvme.Controller
	labels map[*nvme.Controller]string
	before map[*nvme.Controller]*report.HealthSnapshot
	errs   map[*nvme.Controller]string
	kernel []*kernelController // kernel NVMe controllers behind io_uring targets (kernelhealth.go)
}

// defaultRetries is --retries with --recover when not given: SPDK's driver default.
const defaultRetries = 4

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
	f.IntVar(&a.recovery.retries, "retries", 0, "userspace NVMe: send a command that failed with Do Not Retry clear again, up to N times (default 0; 4 with --recover)")
	f.BoolVar(&a.recovery.noAsyncEvents, "no-async-events", false, "userspace NVMe: send no Asynchronous Event Requests (by default AERL+1 are kept outstanding and each event is recorded)")
	f.BoolVar(&a.recovery.noShadowDoorbell, "no-shadow-doorbell", false, "userspace NVMe: ring the I/O queues' doorbell registers even when the controller offers shadow doorbells (Doorbell Buffer Config)")
	f.BoolVar(&a.recovery.noSQCMB, "no-sq-cmb", false, "userspace NVMe: keep the I/O submission queues in host memory even when the controller memory buffer can hold them (spdk_nvme_perf -D)")
	f.BoolVar(&a.recovery.health, "health", false, "also print the controllers' SMART / Health difference over the run in the text report (the JSON always has it on NVMe controllers, userspace or kernel)")
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
	if a.recovery.retries < 0 || a.recovery.retries > 255 {
		return usagef("--retries %d: want 0 to 255", a.recovery.retries)
	}
	if a.recovery.recover && !a.opts.set("retries") {
		a.recovery.retries = defaultRetries
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
	o.NVMe.Recovery.Retries = a.recovery.retries
	o.NVMe.Recovery.AsyncEvents = !a.recovery.noAsyncEvents
	o.NVMe.NoShadowDoorbell = a.recovery.noShadowDoorbell
	o.NVMe.NoSQInCMB = o.NVMe.NoSQInCMB || a.recovery.noSQCMB
	if a.recovery.admin > 0 {
		o.NVMe.AdminTimeout = a.recovery.admin
	}
}

// recoveryConfig lets the drain at the end of a run outlast an I/O timeout and the
// Abort that follows it, so a command that hangs near the end is still aborted and
// counted instead of being abandoned by the drain.
//
// It also takes the "before" health snapshot of every NVMe controller, userspace or
// kernel (kernelhealth.go).
func (a *app) recoveryConfig(cfg *workload.Config, targets []target.Target) {
	a.snapshotBefore(targets)
	a.kernelHealthBefore(targets) // kernelhealth.go
	kernel := 0
	for _, t := range targets {
		if _, ok := t.(*nvme.NamespaceTarget); !ok {
			kernel++
		}
	}
	if kernel > 0 && (a.recovery.io > 0 || a.recovery.recover || a.opts.set("retries")) {
		a.notice("--io-timeout, --recover and --retries apply to userspace NVMe controllers only; kernel devices and files get the kernel's own handling")
	}
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

// controllersOf lists the userspace NVMe controllers behind targets, once each, with
// the label reports use for them.
func (a *app) controllersOf(targets []target.Target) {
	a.recovery.labels = map[*nvme.Controller]string{}
	a.recovery.ctrls = nil
	for _, t := range targets {
		nt, ok := t.(*nvme.NamespaceTarget)
		if !ok {
			continue
		}
		c := nt.Namespace().Controller()
		if _, seen := a.recovery.labels[c]; seen {
			continue
		}
		a.recovery.labels[c] = targetLabel(t.Info())
		a.recovery.ctrls = append(a.recovery.ctrls, c)
	}
}

func (a *app) snapshotBefore(targets []target.Target) {
	a.controllersOf(targets)
	a.recovery.before = map[*nvme.Controller]*report.HealthSnapshot{}
	a.recovery.errs = map[*nvme.Controller]string{}
	for _, c := range a.recovery.ctrls {
		if s, err := healthSnapshot(c); err != nil {
			a.recovery.errs[c] = "before the run: " + err.Error()
		} else {
			a.recovery.before[c] = s
		}
	}
}

// healthSnapshot reads the controller's SMART / Health log.
func healthSnapshot(c *nvme.Controller) (*report.HealthSnapshot, error) {
	log, err := c.SMART()
	if err != nil {
		return nil, err
	}
	return smartSnapshot(&log), nil
}

// smartSnapshot is the report's view of a SMART / Health log page.
func smartSnapshot(log *spec.SMARTLog) *report.HealthSnapshot {
	return &report.HealthSnapshot{
		Time:              time.Now().UTC().Format(timeLayoutNS),
		CriticalWarning:   log.CriticalWarning,
		TemperatureK:      endian.LittleEndian.Uint16(log.Temperature[:]),
		AvailableSpare:    log.AvailableSpare,
		PercentageUsed:    log.PercentageUsed,
		DataUnitsRead:     spec.Counter128(log.DataUnitsRead),
		DataUnitsWritten:  spec.Counter128(log.DataUnitsWritten),
		HostReadCommands:  spec.Counter128(log.HostReadCommands),
		HostWriteCommands: spec.Counter128(log.HostWriteCommands),
		MediaErrors:       spec.Counter128(log.MediaErrors),
		ErrorLogEntries:   spec.Counter128(log.ErrorLogEntries),
		PowerOnHours:      spec.Counter128(log.PowerOnHours),
		UnsafeShutdowns:   spec.Counter128(log.UnsafeShutdowns),
	}
}

// timeLayoutNS is RFC 3339 with nanoseconds, as the JSON document writes times.
const timeLayoutNS = "2006-01-02T15:04:05.000000000Z07:00"

// recoveryAfter takes the "after" health snapshots, collects every controller's events
// and counts into meta (JSON "events", "recovery", "health") and says on stderr what
// the recovery machinery did.
func (a *app) recoveryAfter(meta *report.Meta) {
	defer a.kernelHealthAfter(meta) // kernelhealth.go
	if len(a.recovery.ctrls) == 0 {
		return
	}
	rec := &report.Recovery{}
	for _, c := range a.recovery.ctrls {
		c.PollEvents() // events of the last moments, before the report
		label := a.recovery.labels[c]
		h := report.DeviceHealth{Device: label, Before: a.recovery.before[c], Error: a.recovery.errs[c]}
		if s, err := healthSnapshot(c); err != nil {
			h.Error = strings.TrimPrefix(h.Error+"; ", "; ") + "after the run: " + err.Error()
		} else {
			h.After = s
		}
		h.Diff()
		rec.Health = append(rec.Health, h)

		events, dropped := c.Events()
		for _, e := range events {
			rec.Events = append(rec.Events, report.Event{Time: e.Time.UTC().Format(timeLayoutNS), Device: label, Kind: string(e.Kind), Details: eventDetails(e)})
		}
		counts := report.RecoveryCounts{
			Device: label, Timeouts: c.EventCount(nvme.EventTimeout), Aborts: c.EventCount(nvme.EventAbort),
			Resets: c.Resets(), Retries: c.Retries(), AsyncEvents: c.EventCount(nvme.EventAsyncEvent), EventsDropped: dropped,
		}
		rec.Counts = append(rec.Counts, counts)
		if counts.Timeouts+counts.Aborts+counts.Resets+counts.AsyncEvents > 0 || counts.Retries > 0 {
			a.notice("%s: recovery events: %d timeouts, %d aborts, %d resets, %d retries, %d async events",
				label, counts.Timeouts, counts.Aborts, counts.Resets, counts.Retries, counts.AsyncEvents)
		}
	}
	if len(rec.Events) == 0 && !a.recovery.recover && a.recovery.io == 0 && a.recovery.retries == 0 {
		rec.Counts = nil // nothing asked for, nothing happened: no "recovery" key
	}
	if len(rec.Events) == 0 {
		rec.Events = nil
	}
	meta.Recovery = rec
}

// eventDetails names the queue and command of an event, then what happened.
func eventDetails(e nvme.Event) string {
	switch {
	case e.CID != 0 || (e.QID != 0 && e.Kind != nvme.EventReset && e.Kind != nvme.EventReconnect):
		return fmt.Sprintf("queue %d command %d: %s", e.QID, e.CID, e.Detail)
	case e.QID != 0:
		return fmt.Sprintf("queue %d: %s", e.QID, e.Detail)
	}
	return e.Detail
}

// recoveryText is what the text report adds: the recovery summary, and the health
// difference with --health or when the drive reports new trouble.
func (a *app) recoveryText(meta report.Meta) *report.Recovery {
	r := meta.Recovery
	if r == nil {
		return nil
	}
	out := &report.Recovery{Counts: r.Counts}
	for _, h := range r.Health {
		d := h.Difference
		if a.recovery.health || (d != nil && (d.MediaErrors > 0 || d.NewCriticalWarnings != 0)) {
			out.Health = append(out.Health, h)
		}
	}
	return out
}
