package inbox_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// handlerReceiver serves one source "crm" whose handler is handle, with
// cfg's other settings, on a database of its own.
func handlerReceiver(t *testing.T, handle inbox.HandlerFunc, cfg inbox.ReceiverConfig) *rbundle {
	t.Helper()
	return crmReceiver(t, pgtest.Pool(t), handle, cfg)
}

// crmReceiver is handlerReceiver over pool.
func crmReceiver(t *testing.T, pool *pgxpool.Pool, handle inbox.HandlerFunc, cfg inbox.ReceiverConfig) *rbundle {
	t.Helper()
	in, _ := inbox.New(nil)
	v, _ := verify.StandardWebhooks(secret)
	cfg.Sources = []inbox.Source{{Name: "crm", Verifier: v, Handle: handle}}
	return serveReceiver(t, pool, in, &cfg)
}

// A receipt that runs past ReceiverConfig.Timeout (here its handler waits
// on a row another session locked, as behind a database that stopped
// answering) is answered 503 with Retry-After, saying so, and rolled back:
// without a bound the request waited for as long as its sender did. Once
// the lock is gone the event is processed, then a duplicate.
func TestAReceiptPastItsTimeoutIsAnswered503(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		_, err := tx.Exec(ctx, `UPDATE locked SET n = n + 1`)
		return err
	}
	b := handlerReceiver(t, handle, inbox.ReceiverConfig{Timeout: 300 * time.Millisecond, RetryAfter: 7 * time.Second})
	if _, err := b.pool.Exec(ctx, `CREATE TABLE locked (n int); INSERT INTO locked VALUES (0)`); err != nil {
		t.Fatal(err)
	}
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE locked IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for range 2 {
		r := b.post(t, "crm", "evt_locked", []byte(`{}`), now, nil)
		if r.code != 503 || r.header.Get("Retry-After") != "7" {
			t.Fatalf("past the timeout: %+v", r)
		}
	}
	fails, err := b.inbox.Failures(ctx, b.pool, "crm", "evt_locked", 1)
	if err != nil || len(fails) != 1 || fails[0].Count != 2 || !strings.Contains(fails[0].Reason, "ReceiverConfig.Timeout (300ms)") {
		t.Fatalf("failure rows %+v %v", fails, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"processed", "duplicate"} {
		if r := b.post(t, "crm", "evt_locked", []byte(`{}`), now, nil); r.code != 200 || !strings.Contains(r.body, want) {
			t.Fatalf("delivery %d after the lock: %+v, want %s", i+1, r, want)
		}
	}
	var n int
	if err := b.pool.QueryRow(ctx, `SELECT n FROM locked`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("handler effects %d (%v), want 1", n, err)
	}
	if got := inbox.ReceiptTimeout(handlerReceiver(t, handle, inbox.ReceiverConfig{}).rc); got != 30*time.Second {
		t.Fatalf("default timeout %s, want DefaultReceiptTimeout, 30 s (docs/receiving.md)", got)
	}
}

// A handler that gives up for good only once the receipt's time is out
// (it waited for its context, then returned Permanent) cannot be stored as
// rejected: the receipt is answered 503 and its failure row says the
// timeout cut it, not a bare "context deadline exceeded" (a review's).
// The next delivery, in time, is rejected.
func TestARejectionPastTheTimeoutSaysSo(t *testing.T) {
	t.Parallel()
	var late atomic.Bool
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		if late.Load() {
			<-ctx.Done()
		}
		return inbox.Permanent(errors.New("contact gone"))
	}
	b := handlerReceiver(t, handle, inbox.ReceiverConfig{Timeout: 300 * time.Millisecond})
	now := time.Now()
	late.Store(true)
	if r := b.post(t, "crm", "evt_late", []byte(`{}`), now, nil); r.code != 503 {
		t.Fatalf("rejected past the timeout: %+v", r)
	}
	fails, err := b.inbox.Failures(context.Background(), b.pool, "crm", "evt_late", 1)
	if err != nil || len(fails) != 1 || !strings.Contains(fails[0].Reason, "ran past ReceiverConfig.Timeout (300ms)") {
		t.Fatalf("failure rows %+v %v", fails, err)
	}
	late.Store(false)
	for range 2 {
		if r := b.post(t, "crm", "evt_late", []byte(`{}`), now, nil); r.code != 422 {
			t.Fatalf("in time: %+v", r)
		}
	}
}

// A handler that commits or rolls back the receipt's transaction itself is
// a bug it is told about: 500, saying so, not "503 tx is closed" as an
// outage. After its own commit the retry is a duplicate; after its
// rollback every delivery gets the same 500.
func TestAHandlerThatClosesItsTransactionIsTold(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"commit", "rollback", "commit, then an error", "commit, then a permanent error"} {
		handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
			switch end {
			case "rollback":
				return tx.Rollback(ctx)
			case "commit, then an error":
				_ = tx.Commit(ctx)
				return errors.New("downstream down")
			case "commit, then a permanent error":
				_ = tx.Commit(ctx)
				return inbox.Permanent(errors.New("contact gone"))
			}
			return tx.Commit(ctx)
		}
		b := handlerReceiver(t, handle, inbox.ReceiverConfig{})
		now := time.Now()
		first := b.post(t, "crm", "evt_"+strings.ReplaceAll(end, " ", "_"), []byte(`{}`), now, nil)
		second := b.post(t, "crm", "evt_"+strings.ReplaceAll(end, " ", "_"), []byte(`{}`), now, nil)
		if first.code != 500 {
			t.Fatalf("%s: first delivery %+v", end, first)
		}
		fails, err := b.inbox.Failures(context.Background(), b.pool, "crm", "evt_"+strings.ReplaceAll(end, " ", "_"), 1)
		if err != nil || len(fails) != 1 || !strings.Contains(fails[0].Reason, "committed or rolled back the receipt's transaction itself") {
			t.Fatalf("%s: failure rows %+v %v", end, fails, err)
		}
		if want := map[bool]int{true: 200, false: 500}[strings.HasPrefix(end, "commit")]; second.code != want {
			t.Fatalf("%s: second delivery %+v, want %d", end, second, want)
		}
	}
}

// A receipt cut off at its deadline loses its connection (pgx closes it):
// its failure row is written on another, after the broken one's slot went
// back to the pool. With the slot still taken, a pool of one had no
// connection for the row: it was dropped after 2 s, and the 503 came 2 s
// late (a trial's).
func TestAFailureRowAfterATimeoutInAFullPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		_, err := tx.Exec(ctx, `SELECT pg_sleep(30)`)
		return err
	}
	b := crmReceiver(t, pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=1"), handle, inbox.ReceiverConfig{Timeout: 300 * time.Millisecond})
	for range 2 {
		if r := b.post(t, "crm", "evt_slow", []byte(`{}`), time.Now(), nil); r.code != 503 {
			t.Fatalf("past the timeout: %+v", r)
		}
	}
	fails, err := b.inbox.Failures(ctx, b.pool, "crm", "evt_slow", 1)
	if err != nil || len(fails) != 1 || fails[0].Count != 2 || !strings.Contains(fails[0].Reason, "ReceiverConfig.Timeout") {
		t.Fatalf("failure rows %+v %v; want one counting 2", fails, err)
	}
}

// A handler that ignores its context is not cut at the deadline: it runs
// to its end, and its receipt commits and answers as usual. Duplicates
// that waited behind it in the process for their whole Timeout get 503
// (retry) and write no failure row: the event was being processed, and
// such rows said "failed" for an event processed once.
func TestDuplicatesThatGiveUpWaitingWriteNoFailureRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		entered <- struct{}{}
		<-release // deaf to ctx
		return nil
	}
	b := handlerReceiver(t, handle, inbox.ReceiverConfig{Timeout: 300 * time.Millisecond})
	now := time.Now()
	first := make(chan reply, 1)
	go func() { first <- b.post(t, "crm", "evt_deaf", []byte(`{}`), now, nil) }()
	<-entered
	for range 2 {
		if r := b.post(t, "crm", "evt_deaf", []byte(`{}`), now, nil); r.code != 503 {
			t.Fatalf("a duplicate behind it: %+v", r)
		}
	}
	close(release)
	if r := <-first; r.code != 200 || !strings.Contains(r.body, "processed") {
		t.Fatalf("the first delivery: %+v", r)
	}
	if r := b.post(t, "crm", "evt_deaf", []byte(`{}`), now, nil); r.code != 200 || !strings.Contains(r.body, "duplicate") {
		t.Fatalf("a later duplicate: %+v", r)
	}
	if fails, err := b.inbox.Failures(ctx, b.pool, "crm", "evt_deaf", 5); err != nil || len(fails) != 0 {
		t.Fatalf("failure rows %+v %v; want none", fails, err)
	}
}
