package worker

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// A 410 pauses the destination here at once, before the database knows. A
// balancing round whose read of the paused destinations started before the
// pause was stored must not lift it: before, it did, and the next message
// went out to the destination that had just answered 410.
func TestLocalPauseSurvivesAnOlderRefresh(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.URL(t))
	d, err := New(pool, &Config{Destinations: map[string]dispatch.Destination{"gone": dispatch.DestinationFunc(
		func(context.Context, dispatch.Message) dispatch.Result {
			return dispatch.Result{Outcome: dispatch.Delivered}
		})}})
	if err != nil {
		t.Fatal(err)
	}
	d.leases = pool // Start would open lane management's own
	// Hold back the pause's INSERT (SELECTs still pass) to open the window.
	blocker, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx)
	if _, err := blocker.Exec(ctx, `LOCK TABLE outboxd.outbox_destinations IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	paused := make(chan struct{})
	go func() {
		defer close(paused)
		d.pauseDestination("gone", dispatch.Result{Outcome: dispatch.Pause, StatusCode: 410})
	}()
	waitForLockWait(t, pool, "outbox_destinations")
	if err := d.refreshPaused(ctx); err != nil {
		t.Fatal(err)
	}
	if !d.isPaused("gone") {
		t.Fatal("a refresh that read the database before the pause was stored lifted the pause")
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	<-paused
	if err := d.refreshPaused(ctx); err != nil {
		t.Fatal(err)
	}
	if !d.isPaused("gone") {
		t.Fatal("the stored pause is not mirrored")
	}
	// An operator's resume still lifts it at the next refresh.
	if _, err := pool.Exec(ctx, `UPDATE outboxd.outbox_destinations SET paused = false WHERE name = 'gone'`); err != nil {
		t.Fatal(err)
	}
	if err := d.refreshPaused(ctx); err != nil {
		t.Fatal(err)
	}
	if d.isPaused("gone") {
		t.Fatal("a resume in the database is not mirrored")
	}
}

// waitForLockWait returns once a backend waits for a lock on table,
// observed in pg_locks rather than guessed with a sleep.
func waitForLockWait(t *testing.T, pool *pgxpool.Pool, table string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE NOT granted AND relation = ('outboxd.' || $1)::regclass)`, table).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody waits for a lock on %s", table)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A 410 on a destination an operator already paused keeps the operator's
// reason and time: the pause says why a person stopped it, not that a
// message found it stopped.
func TestPauseKeepsAnOperatorsReason(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.URL(t))
	d, err := New(pool, &Config{Destinations: map[string]dispatch.Destination{"crm": dispatch.DestinationFunc(
		func(context.Context, dispatch.Message) dispatch.Result {
			return dispatch.Result{Outcome: dispatch.Delivered}
		})}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO outboxd.outbox_destinations (name, paused, reason, paused_at)
		VALUES ('crm', true, 'provider maintenance (ada)', '2026-01-02T03:04:05Z')`); err != nil {
		t.Fatal(err)
	}
	d.pauseDestination("crm", dispatch.Result{Outcome: dispatch.Pause, StatusCode: 410})
	var reason string
	var at time.Time
	if err := pool.QueryRow(ctx, `SELECT reason, paused_at FROM outboxd.outbox_destinations WHERE name = 'crm'`).Scan(&reason, &at); err != nil {
		t.Fatal(err)
	}
	if reason != "provider maintenance (ada)" || !at.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("after a 410 on a paused destination: reason %q at %s; want the operator's", reason, at)
	}
}
