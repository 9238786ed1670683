package inbox

import (
	"context"
	"sync"
)

// inflight lets one receipt of an event (and of a body, where the source
// dedupes on it) run at a time in this process. A duplicate or a replay
// that arrives while the first is under way waits here, holding
// no database connection, instead of inside PostgreSQL on the first one's
// row lock with a pool connection of its own: a library trial's burst of
// duplicates of one slow event held every connection of the pool, and an
// unrelated event waited 2.7 s behind them. Across processes the database
// still orders them (Guarantee 1 does not rest on this).
type inflight struct {
	mu      sync.Mutex
	running map[string]chan struct{} // event -> closed when its receipt ends
	waiting int                      // receipts waiting for another's (tests)
}

// enter waits until no receipt of key runs in this process, then counts
// this one as running until leave. It gives up when ctx ends.
func (f *inflight) enter(ctx context.Context, key string) (leave func(), err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		done, busy := f.running[key]
		if !busy {
			break
		}
		f.waiting++
		f.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		f.mu.Lock()
		f.waiting--
		if err != nil {
			return nil, err
		}
	}
	if f.running == nil {
		f.running = map[string]chan struct{}{}
	}
	done := make(chan struct{})
	f.running[key] = done
	return func() {
		f.mu.Lock()
		delete(f.running, key)
		f.mu.Unlock()
		close(done)
	}, nil
}

func (f *inflight) waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waiting
}
