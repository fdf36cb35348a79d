package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestDetectLaunchers(t *testing.T) {
	cases := []struct {
		name string
		env  func(string) string
		ov   Overrides
		want Identity
	}{
		{"none", env(), NoOverrides, Identity{0, 1, ""}},
		{"openmpi", env("OMPI_COMM_WORLD_RANK", "2", "OMPI_COMM_WORLD_SIZE", "3"), NoOverrides, Identity{2, 3, "openmpi"}},
		// Open MPI 5 exports PMIx variables too; its own win.
		{"openmpi over pmix", env("OMPI_COMM_WORLD_RANK", "1", "OMPI_COMM_WORLD_SIZE", "4", "PMIX_RANK", "1"), NoOverrides, Identity{1, 4, "openmpi"}},
		{"pmix with size env", env("PMIX_RANK", "5", WorldSizeEnv, "8"), NoOverrides, Identity{5, 8, "pmix"}},
		{"mpich hydra", env("PMI_RANK", "0", "PMI_SIZE", "2"), NoOverrides, Identity{0, 2, "mpich"}},
		{"slurm", env("SLURM_PROCID", "7", "SLURM_NTASKS", "16"), NoOverrides, Identity{7, 16, "slurm"}},
		{"mpich inside slurm", env("PMI_RANK", "1", "PMI_SIZE", "2", "SLURM_PROCID", "0", "SLURM_NTASKS", "1"), NoOverrides, Identity{1, 2, "mpich"}},
		{"kubernetes with env size", env("JOB_COMPLETION_INDEX", "3", WorldSizeEnv, "4"), NoOverrides, Identity{3, 4, "kubernetes"}},
		{"kubernetes with flag size", env("JOB_COMPLETION_INDEX", "0"), Overrides{Rank: -1, WorldSize: 2}, Identity{0, 2, "kubernetes"}},
		{"flags only", env(), Overrides{Rank: 1, WorldSize: 2}, Identity{1, 2, "flags"}},
		{"flags override slurm", env("SLURM_PROCID", "1", "SLURM_NTASKS", "2"), Overrides{Rank: 0, WorldSize: 3}, Identity{0, 3, "slurm"}},
	}
	for _, c := range cases {
		got, err := Detect(c.env, c.ov)
		if err != nil || got != c.want {
			t.Errorf("%s: Detect = %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestDetectErrors(t *testing.T) {
	cases := []struct {
		name string
		env  func(string) string
		ov   Overrides
		want string
	}{
		{"bad rank", env("OMPI_COMM_WORLD_RANK", "x", "OMPI_COMM_WORLD_SIZE", "2"), NoOverrides, `OMPI_COMM_WORLD_RANK="x"`},
		{"negative rank", env("SLURM_PROCID", "-1", "SLURM_NTASKS", "2"), NoOverrides, `SLURM_PROCID="-1"`},
		{"zero size", env("PMI_RANK", "0", "PMI_SIZE", "0"), NoOverrides, `PMI_SIZE="0"`},
		{"rank beyond size", env("SLURM_PROCID", "4", "SLURM_NTASKS", "4"), NoOverrides, "rank 4 is outside a world of 4"},
		{"kubernetes without size", env("JOB_COMPLETION_INDEX", "1"), NoOverrides, "--world-size"},
		{"bad size env", env("JOB_COMPLETION_INDEX", "1", WorldSizeEnv, "many"), NoOverrides, WorldSizeEnv},
		{"flag world size 0", env(), Overrides{Rank: -1, WorldSize: 0}, "--world-size 0"},
		{"flag rank beyond", env(), Overrides{Rank: 2, WorldSize: 2}, "rank 2 is outside a world of 2"},
		{"flag rank without size", env(), Overrides{Rank: 1, WorldSize: -1}, "rank 1 is outside a world of 1"},
	}
	for _, c := range cases {
		got, err := Detect(c.env, c.ov)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Detect = %+v, %v; want an error with %q", c.name, got, err, c.want)
		}
	}
}

func TestExpandName(t *testing.T) {
	id := Identity{Rank: 3, WorldSize: 8}
	cases := []struct{ pattern, host, want string }{
		{"out.json", "h", "out.json"},
		{"out-{rank}.json", "h", "out-3.json"},
		{"{host}/{rank}-of-{world_size}.json", "node07", "node07/3-of-8.json"},
		{"r{rank}-{host}.json", "a/b", "r3-a_b.json"},
		{"{host}.json", "", "unknown-host.json"},
	}
	for _, c := range cases {
		got, err := ExpandName("--output", c.pattern, id, c.host)
		if err != nil || got != c.want {
			t.Errorf("ExpandName(%q, host %q) = %q, %v; want %q", c.pattern, c.host, got, err, c.want)
		}
	}
	for _, bad := range []string{"out-{ranks}.json", "out-{rank.json", "{}"} {
		if _, err := ExpandName("--output", bad, id, "h"); err == nil || !strings.Contains(err.Error(), "--output") {
			t.Errorf("ExpandName(%q) = %v; want an error naming --output", bad, err)
		}
	}
	if !PerRank("x-{rank}") || !PerRank("{host}.json") || PerRank("x.json") {
		t.Error("PerRank misjudges its patterns")
	}
}

func TestParseStartAt(t *testing.T) {
	got, err := ParseStartAt("2026-11-30T14:00:00.123456789Z")
	if err != nil || got.Nanosecond() != 123456789 {
		t.Fatalf("ParseStartAt = %v, %v", got, err)
	}
	if _, err := ParseStartAt("in 5 seconds"); err == nil || !strings.Contains(err.Error(), "--start-at") {
		t.Fatalf("bad time: %v", err)
	}
}

func TestWaitUntil(t *testing.T) {
	at := time.Now().Add(50 * time.Millisecond)
	if err := WaitUntil(context.Background(), at); err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); now.Before(at) {
		t.Fatalf("returned at %v, before %v", now, at)
	}
	var late *LateError
	if err := WaitUntil(context.Background(), time.Now().Add(-time.Second)); !errors.As(err, &late) || !strings.Contains(err.Error(), "late") {
		t.Fatalf("past instant: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WaitUntil(ctx, time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestBarrierReleasesAllTogether(t *testing.T) {
	addr := freeAddr(t)
	const world = 4
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var released []int
	var wg sync.WaitGroup
	errs := make([]error, world)
	// The last rank arrives late: nobody may pass before it does.
	lastArrives := make(chan struct{})
	for r := world - 1; r >= 0; r-- {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			if r == world-1 {
				time.Sleep(300 * time.Millisecond)
				close(lastArrives)
			}
			errs[r] = Barrier(ctx, addr, Identity{Rank: r, WorldSize: world})
			select {
			case <-lastArrives:
			default:
				errs[r] = fmt.Errorf("rank %d passed the barrier before the last rank arrived", r)
			}
			mu.Lock()
			released = append(released, r)
			mu.Unlock()
		}(r)
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
	if len(released) != world {
		t.Fatalf("released %v", released)
	}
}

func TestBarrierTimesOutNamingMissingRanks(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Barrier(ctx, addr, Identity{Rank: 1, WorldSize: 3}) }()
	err := Barrier(ctx, addr, Identity{Rank: 0, WorldSize: 3})
	if err == nil || !strings.Contains(err.Error(), "2 of 3 ranks arrived (ranks 0 1)") {
		t.Fatalf("rank 0: %v", err)
	}
	if err := <-done; err == nil {
		t.Fatal("rank 1 passed a barrier rank 2 never reached")
	}
}

func TestBarrierRefusesMismatchedWorld(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lead := make(chan error, 1)
	go func() { lead <- Barrier(ctx, addr, Identity{Rank: 0, WorldSize: 2}) }()
	err := Barrier(ctx, addr, Identity{Rank: 1, WorldSize: 3})
	if err == nil || !strings.Contains(err.Error(), "says the world has 3 ranks, rank 0 says 2") {
		t.Fatalf("mismatched rank: %v", err)
	}
	// The good rank still gets through.
	if err := Barrier(ctx, addr, Identity{Rank: 1, WorldSize: 2}); err != nil {
		t.Fatalf("good rank: %v", err)
	}
	if err := <-lead; err != nil {
		t.Fatalf("rank 0: %v", err)
	}
}
