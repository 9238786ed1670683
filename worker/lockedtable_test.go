package worker_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/worker"
)

// A lock on outbox_messages (an operator's VACUUM FULL, a CREATE INDEX
// without CONCURRENTLY) holds every claim and recording behind it. With a
// pool smaller than the lanes (pgx's default is 4 connections on a small
// machine), those statements held every connection, the renewals waited
// for one, and all 32 leases lapsed while the dispatcher was alive: the
// answers it had in hand were refused once the lock went, and the
// messages sent again. Lane management has connections of its own now,
// and a running lane's recording waits as long as its lease holds.
func TestLeasesOutliveALockedTableWithASmallPool(t *testing.T) {
	t.Parallel()
	l := answersBehindALock(t)
	ctx := context.Background()
	// Past twice the lease's TTL (a lease not renewed meanwhile has
	// lapsed), and past the 5 s that bounded a running lane's recording
	// (it gave up, and the batch was sent again: a review's).
	for end := time.Now().Add(7 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		var n int
		if err := l.other.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_lanes WHERE owner IS NOT NULL AND lease_until > now()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n < 32 {
			t.Fatalf("while outbox_messages was locked, %d of 32 leases stayed current", n)
		}
	}
	l.unlock(t)
	l.sentOnce(t)
}

// A stop that comes while the answers in hand wait on the lock records
// them once the lock goes, within the stop's deadline: their recordings
// were cut 5 s after the stop began, and the lanes' next holder sent all
// of them again (a review's, the lock held 8 s, the stop's deadline 30 s).
func TestAStopDuringALockRecordsWhatWasSent(t *testing.T) {
	t.Parallel()
	l := answersBehindALock(t)
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopped <- l.d.Stop(ctx)
	}()
	// The lock held past the 5 s a stopping lane's recording had.
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while the answers in hand waited on the lock", err)
	case <-time.After(7 * time.Second):
	}
	l.unlock(t)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	l.sentOnce(t)
}

// lockedAnswers is a dispatcher on a pool of 4 connections whose 8
// messages were answered while outbox_messages is locked: their
// recordings wait on the lock, with every connection of the pool.
type lockedAnswers struct {
	b     bundle
	d     *worker.Dispatcher
	other *pgxpool.Pool
	tx    pgx.Tx
}

const lockedN = 8

func answersBehindALock(t *testing.T) lockedAnswers {
	t.Helper()
	b := setup(t)
	url := pgtest.URL(t)
	b.pool = pgtest.Connect(t, url+"&pool_max_conns=4")
	l := lockedAnswers{b: b, other: pgtest.Connect(t, url+"&pool_max_conns=3")}
	ctx := context.Background()
	gate := make(chan struct{})
	b.sink.Respond = func(*http.Request, []byte) (int, http.Header) { <-gate; return http.StatusOK, nil }
	l.d = b.start(t, b.config(t, func(c *worker.Config) { c.LeaseTTL, c.AcquireInterval = 2*time.Second, 200*time.Millisecond }))
	waitReady(t, b)
	b.enqueue(t, lockedN, lockedN, func(int) string { return "" })
	waitFor(t, 10*time.Second, "every message in flight", func() bool { return b.sink.InFlight() == lockedN })
	tx, err := l.other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `LOCK TABLE outboxd.outbox_messages IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	l.tx = tx
	close(gate) // the answers come while the table is locked
	waitFor(t, 10*time.Second, "every connection of the dispatcher's pool waiting on the lock", func() bool {
		var n int
		err := l.other.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND backend_type = 'client backend'`).Scan(&n)
		return err == nil && n >= 4
	})
	return l
}

func (l lockedAnswers) unlock(t *testing.T) {
	t.Helper()
	if err := l.tx.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// sentOnce checks that every message was recorded delivered and sent once.
func (l lockedAnswers) sentOnce(t *testing.T) {
	t.Helper()
	if got := l.b.waitSettled(t, 20*time.Second); got["delivered"] != lockedN {
		t.Fatalf("after the lock: %v, want %d delivered", got, lockedN)
	}
	if got := len(l.b.sink.Requests()); got != lockedN {
		t.Fatalf("%d messages were sent %d times: answers in hand were refused and sent again", lockedN, got)
	}
}

// Lane management's connections close with the dispatcher: none is left
// once Stop returned and the application closed its pool.
func TestStopClosesLaneManagementsConnections(t *testing.T) {
	t.Parallel()
	b := setup(t)
	url := pgtest.URL(t)
	b.pool = pgtest.Connect(t, url+"&application_name=dispatcher")
	other := pgtest.Connect(t, url+"&application_name=observer")
	ctx := context.Background()
	d, err := worker.New(b.pool, b.config(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitReady(t, b)
	sessions := func() int {
		var n int
		if err := other.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'dispatcher'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := sessions(); n == 0 {
		t.Fatal("no session of the dispatcher's while it runs")
	}
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	b.pool.Close()
	waitFor(t, 10*time.Second, "every session of the dispatcher's gone after its Stop and its pool's Close", func() bool { return sessions() == 0 })
}
