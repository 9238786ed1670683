package main

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

type closer func()

func (c closer) Close() { c() }

// The pools close together, within one bound: a second past the stop's,
// when that has passed. /metrics' pool, closed on its own before the
// others and without a bound, held a trial's exit past the documented
// shutdown_timeout + StuckGrace + 1 s (a scrape waiting on a lock).
func TestClosePoolsWaitsOneBoundForAll(t *testing.T) {
	t.Parallel()
	stuck := make(chan struct{})
	defer close(stuck)
	var closed atomic.Int32
	start := time.Now()
	closePools(start, slog.New(slog.DiscardHandler),
		closer(func() { <-stuck }), closer(func() { <-stuck }), closer(func() { closed.Add(1) }))
	took := time.Since(start)
	if took < time.Second || took > 3*time.Second {
		t.Errorf("closePools took %s with two pools that never close; want a second (+2 s for a busy machine)", took)
	}
	if closed.Load() != 1 {
		t.Error("the pool that closes at once was not closed")
	}
}
