package inbox_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// handlerReceiver serves one source "crm" whose handler is handle, with
// cfg's other settings.
func handlerReceiver(t *testing.T, handle inbox.HandlerFunc, cfg inbox.ReceiverConfig) *rbundle {
	t.Helper()
	pool := pgtest.Pool(t)
	in, _ := inbox.New(nil)
	v, _ := verify.StandardWebhooks(secret)
	cfg.Sources = []inbox.Source{{Name: "crm", Verifier: v, Handle: handle}}
	rc, err := inbox.NewReceiver(pool, in, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := &rbundle{rc: rc, pool: pool, inbox: in}
	b.srv = httptest.NewServer(rc)
	t.Cleanup(b.srv.Close)
	return b
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

// A handler that commits or rolls back the receipt's transaction itself is
// a bug it is told about: 500, saying so, not "503 tx is closed" as an
// outage. After its own commit the retry is a duplicate; after its
// rollback every delivery gets the same 500.
func TestAHandlerThatClosesItsTransactionIsTold(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"commit", "rollback"} {
		handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
			if end == "commit" {
				return tx.Commit(ctx)
			}
			return tx.Rollback(ctx)
		}
		b := handlerReceiver(t, handle, inbox.ReceiverConfig{})
		now := time.Now()
		first := b.post(t, "crm", "evt_"+end, []byte(`{}`), now, nil)
		second := b.post(t, "crm", "evt_"+end, []byte(`{}`), now, nil)
		if first.code != 500 {
			t.Fatalf("%s: first delivery %+v", end, first)
		}
		fails, err := b.inbox.Failures(context.Background(), b.pool, "crm", "evt_"+end, 1)
		if err != nil || len(fails) != 1 || !strings.Contains(fails[0].Reason, "committed or rolled back the receipt's transaction itself") {
			t.Fatalf("%s: failure rows %+v %v", end, fails, err)
		}
		if want := map[string]int{"commit": 200, "rollback": 500}[end]; second.code != want {
			t.Fatalf("%s: second delivery %+v, want %d", end, second, want)
		}
	}
}
