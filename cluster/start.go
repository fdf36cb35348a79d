package cluster

import (
	"context"
	"fmt"
	"time"
)

// ParseStartAt reads --start-at: an RFC 3339 instant, fractional seconds allowed
// (`2026-11-30T14:00:00.250Z`).
func ParseStartAt(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--start-at %q: want an RFC 3339 time such as 2026-11-30T14:00:00.5Z (fractional seconds allowed)", s)
	}
	return t, nil
}

// LateError says a rank was not ready by the instant every rank was to start at.
type LateError struct {
	StartAt, Ready time.Time
}

func (e *LateError) Error() string {
	return fmt.Sprintf("--start-at %s: this rank was ready only at %s, %v late; give the ranks more time to open their targets",
		e.StartAt.UTC().Format(time.RFC3339Nano), e.Ready.UTC().Format(time.RFC3339Nano), e.Ready.Sub(e.StartAt).Round(time.Microsecond))
}

// spinWindow is how long before the instant WaitUntil stops sleeping and spins on the
// clock: Go's timers may fire a millisecond or more late, a spin does not.
const spinWindow = 2 * time.Millisecond

// WaitUntil returns at the instant t, precisely: it sleeps until shortly before it and
// then spins on the clock. It fails with a *LateError when t has already passed, and
// with ctx's error when ctx ends first. It runs before measurement starts, so the spin
// costs the run nothing.
func WaitUntil(ctx context.Context, t time.Time) error {
	if now := time.Now(); now.After(t) {
		return &LateError{StartAt: t, Ready: now}
	}
	if d := time.Until(t) - spinWindow; d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
	for time.Now().Before(t) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}
