// Package cluster fits nvmeperf into the launchers people already use — mpirun, srun, a
// Kubernetes Indexed Job — instead of growing a cluster manager of its own. It tells this
// process's rank and world size from the launcher's environment, expands per-rank output
// file names, and lines ranks up for a common start (an absolute instant, or a TCP
// barrier for clusters without synchronized clocks).
//
// Nothing here prints or exits; errors name the flag or variable at fault.
package cluster

import (
	"fmt"
	"strconv"
)

// Identity is where this process stands in a multi-process run.
type Identity struct {
	Rank      int
	WorldSize int
	// Launcher names where Rank came from: "openmpi", "pmix", "mpich", "slurm",
	// "kubernetes", "flags", or "" for a single process started by hand.
	Launcher string
}

// Distributed reports whether the run has more than one rank.
func (id Identity) Distributed() bool { return id.WorldSize > 1 }

// Overrides are the --rank and --world-size flags; a negative value means not given.
type Overrides struct {
	Rank      int
	WorldSize int
}

// NoOverrides is Overrides with neither flag given.
var NoOverrides = Overrides{Rank: -1, WorldSize: -1}

// WorldSizeEnv lets a launcher that exports only an index (a Kubernetes Indexed Job's
// JOB_COMPLETION_INDEX) pass the world size through the pod spec.
const WorldSizeEnv = "NVMEPERF_WORLD_SIZE"

// launcher is one source of rank and size, tried in order. An empty sizeVar means the
// launcher exports no size and it must come from --world-size or WorldSizeEnv.
type launcher struct {
	name, rankVar, sizeVar string
}

// launchers in the order they are tried. Open MPI also sets PMIX_RANK, and Slurm may run
// under an MPI launcher, so the most specific variables come first.
var launchers = []launcher{
	{"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
	{"pmix", "PMIX_RANK", "PMIX_SIZE"},
	{"mpich", "PMI_RANK", "PMI_SIZE"},
	{"slurm", "SLURM_PROCID", "SLURM_NTASKS"},
	{"kubernetes", "JOB_COMPLETION_INDEX", ""},
}

// Detect works out the identity from the environment (getenv is os.Getenv in the CLI)
// and the flags, which override what a launcher says.
func Detect(getenv func(string) string, ov Overrides) (Identity, error) {
	id := Identity{Rank: 0, WorldSize: 1}
	for _, l := range launchers {
		v := getenv(l.rankVar)
		if v == "" {
			continue
		}
		rank, err := nonNegative(l.rankVar, v)
		if err != nil {
			return Identity{}, err
		}
		id = Identity{Rank: rank, WorldSize: -1, Launcher: l.name}
		if l.sizeVar != "" {
			if s := getenv(l.sizeVar); s != "" {
				if id.WorldSize, err = positive(l.sizeVar, s); err != nil {
					return Identity{}, err
				}
			}
		}
		break
	}
	if id.WorldSize < 0 {
		if s := getenv(WorldSizeEnv); s != "" {
			size, err := positive(WorldSizeEnv, s)
			if err != nil {
				return Identity{}, err
			}
			id.WorldSize = size
		}
	}
	if ov.Rank >= 0 {
		id.Rank = ov.Rank
		if id.Launcher == "" {
			id.Launcher = "flags"
		}
	}
	if ov.WorldSize >= 0 {
		if ov.WorldSize == 0 {
			return Identity{}, fmt.Errorf("--world-size 0: the world size must be at least 1")
		}
		id.WorldSize = ov.WorldSize
		if id.Launcher == "" {
			id.Launcher = "flags"
		}
	}
	if id.WorldSize < 0 {
		return Identity{}, fmt.Errorf("rank %d from %s, but no world size: give --world-size N or set %s (the Job's completions)",
			id.Rank, id.Launcher, WorldSizeEnv)
	}
	if id.Rank >= id.WorldSize {
		return Identity{}, fmt.Errorf("rank %d is outside a world of %d (ranks are 0 to %d); check --rank and --world-size", id.Rank, id.WorldSize, id.WorldSize-1)
	}
	return id, nil
}

func nonNegative(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a rank, a whole number from 0", name, v)
	}
	return n, nil
}

func positive(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a world size, a whole number from 1", name, v)
	}
	return n, nil
}
