package main

import (
	"fmt"

	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/driver/uring"
	"github.com/nvmeperf/nvmeperf/workload"
)

// openKernel opens a kernel block device, NVMe generic character device or regular
// file through io_uring.
func (a *app) openKernel(path string, p *plan, fileSize int64) (target.Target, error) {
	writes := p.cfg.Pattern == workload.Write || p.cfg.Pattern == workload.RandWrite ||
		(p.cfg.Pattern.Mixed() && p.cfg.ReadPercent < 100)
	t, err := uring.Open(path, uring.Options{
		SQPoll:           a.opts.sqpoll,
		IOPoll:           a.opts.hipri,
		Passthrough:      a.opts.passthru,
		AllowDestructive: a.opts.allowDestruct,
		Size:             fileSize,
		Writes:           writes,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}
