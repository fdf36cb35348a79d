package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvmeioctl"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/driver/uring"
	"github.com/nvmeperf/nvmeperf/report"
)

// Health of kernel NVMe controllers (docs/recovery.md): for io_uring targets on an NVMe
// namespace (/dev/nvmeXnY, its partitions, /dev/ngXnY) the SMART / Health log of the
// controller behind it is read through admin passthrough on /dev/nvmeX before and after
// the run, one entry per controller however many targets share it. Files and devices of
// other drivers have none; a controller that cannot be read (not root, a missing /dev
// node) gets an entry with its error. Nothing here ends the run.

// kernelController is one kernel NVMe controller behind the run's targets.
type kernelController struct {
	ref     nvmeioctl.ControllerRef // Name empty when the controller could not be found
	label   string                  // JSON "device": the controller's /dev node
	targets []string                // the run's targets behind it, in order
	before  *report.HealthSnapshot
	err     string // why a snapshot is missing
}

// maxKernelErrorLog bounds the Error Information log entries read after a run.
const maxKernelErrorLog = 64

// kernelHealthBefore finds the kernel NVMe controllers behind targets and takes their
// "before" snapshots.
func (a *app) kernelHealthBefore(targets []target.Target) {
	a.recovery.kernel = nil
	byName := map[string]*kernelController{}
	for _, t := range targets {
		if _, ok := t.(*uring.Target); !ok {
			continue
		}
		path := t.Info().Name
		refs, err := nvmeioctl.Controllers(path)
		if errors.Is(err, nvmeioctl.ErrNotNVMe) {
			if a.recovery.health {
				a.notice("--health: %s is not an NVMe device: it has no SMART / Health log", path)
			}
			continue
		}
		if err != nil {
			a.recovery.kernel = append(a.recovery.kernel, &kernelController{label: path, targets: []string{path},
				err: "finding its NVMe controller: " + err.Error()})
			continue
		}
		for _, ref := range refs {
			kc := byName[ref.Name]
			if kc == nil {
				kc = &kernelController{ref: ref, label: ref.Path}
				byName[ref.Name] = kc
				a.recovery.kernel = append(a.recovery.kernel, kc)
			}
			if !slices.Contains(kc.targets, path) {
				kc.targets = append(kc.targets, path)
			}
		}
	}
	for _, kc := range a.recovery.kernel {
		if kc.ref.Name == "" {
			continue
		}
		if s, err := kernelHealthSnapshot(kc.ref); err != nil {
			kc.err = "before the run: " + err.Error()
		} else {
			kc.before = s
		}
	}
}

// kernelHealthSnapshot reads a kernel controller's SMART / Health log.
func kernelHealthSnapshot(ref nvmeioctl.ControllerRef) (*report.HealthSnapshot, error) {
	c, err := nvmeioctl.OpenRef(ref)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	log, err := c.SMART()
	if err != nil {
		return nil, err
	}
	return smartSnapshot(&log), nil
}

// kernelHealthAfter takes the "after" snapshots and adds the kernel controllers' health
// (and the Error Information log entries of errors the run added) to meta.
func (a *app) kernelHealthAfter(meta *report.Meta) {
	if len(a.recovery.kernel) == 0 {
		return
	}
	if meta.Recovery == nil {
		meta.Recovery = &report.Recovery{}
	}
	rec := meta.Recovery
	for _, kc := range a.recovery.kernel {
		h := report.DeviceHealth{Device: kc.label, Targets: kc.targets, Before: kc.before, Error: kc.err}
		if kc.ref.Name != "" {
			if s, err := kernelHealthSnapshot(kc.ref); err != nil {
				h.Error = strings.TrimPrefix(h.Error+"; ", "; ") + "after the run: " + err.Error()
			} else {
				h.After = s
			}
		}
		h.Diff()
		rec.Health = append(rec.Health, h)
		if h.Error != "" && a.recovery.health {
			a.notice("health of %s: %s", h.Device, h.Error)
		}
		if d := h.Difference; d != nil && d.ErrorLogEntries > 0 {
			rec.Events = append(rec.Events, kernelErrorLog(kc, int(min(d.ErrorLogEntries, maxKernelErrorLog)))...)
		}
	}
}

// kernelErrorLog reads the newest n entries of the controller's Error Information log
// — the errors the SMART log counted during the run — as error_log events. The kernel
// path has no completion to look at for More, so the count's growth is the signal.
func kernelErrorLog(kc *kernelController, n int) []report.Event {
	now := time.Now().UTC().Format(timeLayoutNS)
	event := func(details string) report.Event {
		return report.Event{Time: now, Device: kc.label, Kind: report.EventErrorLog, Details: details}
	}
	c, err := nvmeioctl.OpenRef(kc.ref)
	if err != nil {
		return []report.Event{event("reading the error information log failed: " + err.Error())}
	}
	defer c.Close()
	entries, err := c.ErrorLog(n)
	if err != nil {
		return []report.Event{event("reading the error information log failed: " + err.Error())}
	}
	var events []report.Event
	for i := len(entries) - 1; i >= 0; i-- { // oldest first, as events happen
		e := &entries[i]
		if e.ErrorCount == 0 {
			continue // an empty entry
		}
		events = append(events, event(fmt.Sprintf("queue %d command %d: error %d: %v, LBA %d, NSID %d",
			e.SQID, e.CID, e.ErrorCount, e.StatusField(), e.LBA, e.NSID)))
	}
	return events
}
