package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// The barrier protocol is one line each way, so it can be read in a packet capture:
//
//	rank → rank 0:   nvmeperf-barrier/1 rank=R world=N
//	rank 0 → rank:   go                  (once every rank has arrived)
//	rank 0 → rank:   error <reason>      (wrong world size, duplicate or bad rank)
const barrierHello = "nvmeperf-barrier/1"

// barrierRetry is how often a rank tries again to reach rank 0, which may still be
// opening its targets.
const barrierRetry = 100 * time.Millisecond

// Barrier holds every rank until all WorldSize ranks have reached it, for clusters whose
// clocks are not synchronized well enough for --start-at. Rank 0 listens on addr (falling
// back to every interface on addr's port when addr is not one of its own); the others
// connect to it, retrying until ctx ends. All ranks return together, within a network
// round trip of each other.
func Barrier(ctx context.Context, addr string, id Identity) error {
	if id.WorldSize <= 1 {
		return nil
	}
	if id.Rank == 0 {
		return lead(ctx, addr, id.WorldSize)
	}
	return follow(ctx, addr, id)
}

func lead(ctx context.Context, addr string, world int) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		_, port, splitErr := net.SplitHostPort(addr)
		if splitErr != nil {
			return fmt.Errorf("--barrier %q: want HOST:PORT", addr)
		}
		if ln, err = lc.Listen(ctx, "tcp", net.JoinHostPort("", port)); err != nil {
			return fmt.Errorf("--barrier %s: rank 0 cannot listen: %w", addr, err)
		}
	}
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	conns := make(map[int]net.Conn, world-1)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for len(conns) < world-1 {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("--barrier %s: %d of %d ranks arrived (%s) before %w", addr, len(conns)+1, world, arrived(conns), ctx.Err())
			}
			return fmt.Errorf("--barrier %s: %w", addr, err)
		}
		rank, err := readHello(ctx, c, world)
		if err == nil {
			if _, dup := conns[rank]; dup {
				err = fmt.Errorf("rank %d arrived twice", rank)
			}
		}
		if err != nil {
			fmt.Fprintf(c, "error %v\n", err)
			c.Close()
			continue // a stray or misconfigured peer must not stop the others
		}
		conns[rank] = c
	}
	var errs []error
	for rank, c := range conns {
		if _, err := c.Write([]byte("go\n")); err != nil {
			errs = append(errs, fmt.Errorf("--barrier %s: telling rank %d to start: %w", addr, rank, err))
		}
	}
	return errors.Join(errs...)
}

func readHello(ctx context.Context, c net.Conn, world int) (int, error) {
	deadline := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetReadDeadline(deadline)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("no greeting from %s: %w", c.RemoteAddr(), err)
	}
	_ = c.SetReadDeadline(time.Time{})
	var rank, w int
	if _, err := fmt.Sscanf(strings.TrimSpace(line), barrierHello+" rank=%d world=%d", &rank, &w); err != nil {
		return 0, fmt.Errorf("greeting %q from %s is not %s", strings.TrimSpace(line), c.RemoteAddr(), barrierHello)
	}
	if w != world {
		return 0, fmt.Errorf("rank %d says the world has %d ranks, rank 0 says %d", rank, w, world)
	}
	if rank < 1 || rank >= world {
		return 0, fmt.Errorf("rank %d is outside 1..%d", rank, world-1)
	}
	return rank, nil
}

func arrived(conns map[int]net.Conn) string {
	ranks := []int{0}
	for r := range conns {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	return "ranks " + strings.Trim(fmt.Sprint(ranks), "[]")
}

func follow(ctx context.Context, addr string, id Identity) error {
	var d net.Dialer
	var c net.Conn
	for {
		var err error
		if c, err = d.DialContext(ctx, "tcp", addr); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("--barrier %s: rank %d could not reach rank 0 before %w (last: %v)", addr, id.Rank, ctx.Err(), err)
		case <-time.After(barrierRetry):
		}
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := fmt.Fprintf(c, "%s rank=%d world=%d\n", barrierHello, id.Rank, id.WorldSize); err != nil {
		return fmt.Errorf("--barrier %s: %w", addr, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("--barrier %s: rank %d waited for the other ranks until %w", addr, id.Rank, ctx.Err())
		}
		return fmt.Errorf("--barrier %s: rank 0 closed the connection: %w", addr, err)
	}
	switch line = strings.TrimSpace(line); {
	case line == "go":
		return nil
	case strings.HasPrefix(line, "error "):
		return fmt.Errorf("--barrier %s: rank 0 refused rank %d: %s", addr, id.Rank, strings.TrimPrefix(line, "error "))
	default:
		return fmt.Errorf("--barrier %s: unexpected answer %q from rank 0", addr, line)
	}
}
