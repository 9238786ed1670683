package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// A transaction prepared for two-phase commit after its enqueue is held by
// no session: the Notifier sees it so once and backs off from it, as from
// any transaction left open, instead of asking every BusyInterval for
// commitWatch as it does for a COMMIT under way. COMMIT PREPARED, from any
// session, is then announced; ROLLBACK PREPARED is forgotten. The shared
// server has max_prepared_transactions 0, so this runs on a throwaway one.
func TestNotifierBacksOffFromAPreparedTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := pgtest.NewCluster(t)
	url := cluster.URL(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ALTER SYSTEM SET max_prepared_transactions = 4`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	cluster.Stop() // the setting needs a restart
	cluster.Start(t)
	b := newNotifierBundleAt(t, url, nil)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })

	prepare := func(gid string) int16 {
		tx, err := b.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.ob.Enqueue(ctx, tx, Message{Destination: "crm", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		var lane int16
		if err := tx.QueryRow(ctx, `SELECT lane FROM outboxd.outbox_messages ORDER BY id DESC LIMIT 1`).Scan(&lane); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `PREPARE TRANSACTION '`+gid+`'`); err != nil {
			t.Fatal(err)
		}
		// The session is out of its transaction: pgx's rollback only
		// warns, and gives the connection back to the pool.
		_ = tx.Rollback(ctx)
		return lane
	}

	committed := prepare("outboxd-commit")
	b.waitFlush(t, "the prepared transaction", func(r flushReport) bool { return r.inProgress == 1 })
	flushes := 0
	for window := time.After(time.Second); window != nil; {
		select {
		case <-b.n.flushed:
			flushes++
		case <-window:
			window = nil
		}
	}
	// Watched as a COMMIT under way, it would be asked about every 2 ms
	// for a second (about 500 questions).
	if flushes > 40 {
		t.Fatalf("%d questions in the first second of a prepared transaction; want at most about 40 (backed off from, as any transaction left open)", flushes)
	}
	t.Logf("%d questions in the prepared transaction's first second", flushes)

	prepare("outboxd-rollback")
	b.waitFlush(t, "both prepared transactions", func(r flushReport) bool { return r.inProgress == 2 })
	if _, err := admin.Exec(ctx, `ROLLBACK PREPARED 'outboxd-rollback'`); err != nil {
		t.Fatal(err)
	}
	b.waitFlush(t, "the rollback", func(r flushReport) bool { return r.aborted == 1 })
	b.sentinel(t) // a rolled-back transaction is forgotten, never announced
	began := time.Now()
	if _, err := admin.Exec(ctx, `COMMIT PREPARED 'outboxd-commit'`); err != nil {
		t.Fatal(err)
	}
	slowCommit{lane: committed}.announced(t, b)
	t.Logf("COMMIT PREPARED announced after %s", time.Since(began).Round(time.Millisecond))
	b.waitFlush(t, "the commit", func(r flushReport) bool { return r.committed == 1 })
	b.n.mu.Lock()
	left := len(b.n.pending)
	b.n.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d transactions still pending after both prepared ones ended", left)
	}
}
