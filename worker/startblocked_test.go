package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/outboxd/outboxd/worker"
)

// A Stop during a Start blocked on the database (here a lock on the lanes
// table) returns within its context, Ready answers at once meanwhile, and
// Start then returns an error: the dispatcher never runs.
func TestStopDuringABlockedStart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bg := context.Background()
	tx, err := b.pool.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(bg) }()
	if _, err := tx.Exec(bg, `LOCK TABLE outboxd.outbox_lanes IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	d, err := worker.New(b.pool, b.config(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- d.Start(bg) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := b.pool.QueryRow(bg, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND l.relation = 'outboxd.outbox_lanes'::regclass AND a.query LIKE '%INSERT INTO%outbox_lanes%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the start's insert of lanes never waited on the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}

	ready := make(chan bool, 1)
	go func() { ready <- d.Ready() }()
	select {
	case r := <-ready:
		if r {
			t.Fatal("ready while its start is blocked")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Ready still blocked after 3 s behind a blocked start")
	}

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(bg, 500*time.Millisecond)
		defer cancel()
		stopped <- d.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop during the blocked start: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Stop(500 ms) still blocked after 3 s behind a blocked start")
	}
	select {
	case err := <-started:
		if err == nil {
			t.Fatal("Start returned nil although Stop came during it")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start still blocked 5 s after the Stop")
	}
	if d.Ready() {
		t.Fatal("ready after a Stop during its start")
	}
	if err := d.Stop(bg); err != nil {
		t.Fatalf("Stop again: %v, want nil", err)
	}
}
