package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/nvmeperf/nvmeperf/cluster"
	"github.com/nvmeperf/nvmeperf/report"
)

// startLead is how long before --start-at workers start polling when no warm-up was
// asked for; I/O in it is not measured.
const startLead = 20 * time.Millisecond

// clusterOpts are the flags of runs across hosts (docs/distributed.md).
type clusterOpts struct {
	rank, worldSize int
	startAt         string
	barrier         string
	barrierTimeout  time.Duration

	id cluster.Identity // worked out by clusterBefore
}

func (a *app) registerClusterFlags(f *pflag.FlagSet) {
	c := &a.cluster
	f.IntVar(&c.rank, "rank", -1, "this process's rank in a run across hosts; default from the launcher (mpirun, srun, a Kubernetes Indexed Job) or 0")
	f.IntVar(&c.worldSize, "world-size", -1, "number of ranks; default from the launcher, or "+cluster.WorldSizeEnv+", or 1")
	f.StringVar(&c.startAt, "start-at", "", "RFC 3339 instant (fractional seconds allowed) at which every rank starts measuring; warm-up runs just before it")
	f.StringVar(&c.barrier, "barrier", "", "HOST:PORT where rank 0 waits for every rank before all start together (clusters without synchronized clocks)")
	f.DurationVar(&c.barrierTimeout, "barrier-timeout", 5*time.Minute, "how long ranks wait at --barrier")
}

// clusterBefore works out this process's rank, expands {rank}, {world_size} and {host}
// in the file flags, and sets the start gate. It runs before any file or target is
// opened, so every mistake here is a usage error with nothing touched.
func (a *app) clusterBefore(p *plan) error {
	c := &a.cluster
	id, err := cluster.Detect(os.Getenv, cluster.Overrides{Rank: c.rank, WorldSize: c.worldSize})
	if err != nil {
		return usagef("%v", err)
	}
	c.id = id
	host, _ := os.Hostname()
	for _, file := range []struct {
		flag string
		path *string
	}{{"--output", &a.opts.outputFile}, {"--json-output", &a.compat.jsonOutput}} {
		if *file.path == "" {
			continue
		}
		if *file.path, err = cluster.ExpandName(file.flag, *file.path, id, host); err != nil {
			return usagef("%v", err)
		}
	}
	if id.Distributed() && a.opts.outputFile != "" && !cluster.PerRank(a.opts.outputFile) {
		a.notice("--output %s has no {rank} or {host}: with %d ranks, ranks sharing a file system write the same file", a.opts.outputFile, id.WorldSize)
	}

	if err := a.clusterUsage(a.results.hooks != nil); err != nil {
		return err
	}
	switch {
	case c.startAt != "":
		at, err := cluster.ParseStartAt(c.startAt)
		if err != nil {
			return usagef("%v", err)
		}
		// Measurement starts at the instant by this host's clock (the workload's
		// MeasureAt), whenever this process gets the CPU: warm-up runs up to it, and
		// without -a a short lead stands in so the workers are polling when it comes.
		p.cfg.MeasureAt = at
		warmupAt := at.Add(-max(p.cfg.Warmup, startLead))
		p.cfg.StartGate = func(ctx context.Context) error {
			if err := cluster.WaitUntil(ctx, warmupAt); err != nil {
				return fmt.Errorf("rank %d: %w", id.Rank, err)
			}
			return nil
		}
	case c.barrier != "":
		addr, timeout := c.barrier, c.barrierTimeout
		p.cfg.StartGate = func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return cluster.Barrier(ctx, addr, id)
		}
	}
	return nil
}

// clusterUsage checks the start flags on their own; multi says the run is one of many
// (a sweep point or a --repeat repetition), which sweep and --repeat check before the
// first run.
func (a *app) clusterUsage(multi bool) error {
	c := &a.cluster
	if c.startAt != "" && multi {
		// Every point or repetition would wait for the same instant: all but the first late.
		return usagef("--start-at %s: applies to a single run, not to a sweep or --repeat; use --barrier to line ranks up at every point", c.startAt)
	}
	if c.startAt != "" && c.barrier != "" {
		return usagef("--start-at and --barrier both given: use --start-at with synchronized clocks, --barrier without")
	}
	if c.barrierTimeout <= 0 {
		return usagef("--barrier-timeout %v: must be positive", c.barrierTimeout)
	}
	return nil
}

// clusterHost records the rank in the JSON's host block.
func (a *app) clusterHost(h report.Host) report.Host {
	h.Rank, h.WorldSize, h.Launcher = a.cluster.id.Rank, max(1, a.cluster.id.WorldSize), a.cluster.id.Launcher
	return h
}
