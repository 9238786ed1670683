package inbox_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/worker"
)

// Item 17: an async event whose key expired before its handler ran is not
// purged (its job would then find nothing, report a duplicate and the
// handler would never run); it shows in the backlog until it is processed.
func TestPurgeKeepsUnprocessedAsyncEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE leads (event_id text)`); err != nil {
		t.Fatal(err)
	}
	in, _ := inbox.New(nil)
	v, _ := verify.StandardWebhooks(secret)
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		_, err := tx.Exec(ctx, `INSERT INTO leads VALUES ($1)`, d.ID)
		return err
	}
	insertOnly, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: "outboxd"})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{
		Sources: []inbox.Source{{Name: "forms", Verifier: v, Handle: handle, Async: true}}, River: insertOnly,
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &rbundle{rc: rc, pool: pool, inbox: in, srv: httptest.NewServer(rc)}
	t.Cleanup(b.srv.Close)
	now := time.Now()
	for i, want := range []string{"accepted", "duplicate"} {
		if r := b.post(t, "forms", "evt_slow", []byte(`{}`), now, nil); !strings.Contains(r.body, want) {
			t.Fatalf("delivery %d: %+v", i, r)
		}
	}
	// The worker was down past the dedupe window.
	if _, err := pool.Exec(ctx, `UPDATE outboxd.inbox_events SET expires_at = now() - interval '1 hour', received_at = now() - interval '5 days'`); err != nil {
		t.Fatal(err)
	}
	sink, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: "http://127.0.0.1:1/unused"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := worker.New(pool, &worker.Config{DisableRiver: true, Logger: slog.New(slog.DiscardHandler),
		Destinations: map[string]dispatch.Destination{"unused": sink}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := d.Purge(ctx, time.Minute); err != nil || res.InboxKeys != 0 {
		t.Fatalf("purge: %+v %v", res, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(inbox.BacklogCollector(pool, in))
	if n, err := testutil.GatherAndCount(reg, "outboxd_inbox_oldest_unprocessed_age_seconds"); err != nil || n != 1 {
		t.Fatalf("backlog series %d %v", n, err)
	}
	backlog, err := in.Unprocessed(ctx, pool)
	if err != nil || len(backlog) != 1 || backlog[0].Count != 1 || time.Since(backlog[0].Oldest) < 4*24*time.Hour {
		t.Fatalf("backlog %+v %v", backlog, err)
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, rc.AsyncWorker())
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema: "outboxd", Workers: workers, Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		FetchCooldown: 20 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var leads int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM leads`).Scan(&leads); err != nil {
			t.Fatal(err)
		}
		if leads == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the handler never ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if backlog, err := in.Unprocessed(ctx, pool); err != nil || len(backlog) != 0 {
		t.Fatalf("backlog after processing %+v %v", backlog, err)
	}
	// Processed and expired: now the purge takes it.
	if res, err := d.Purge(ctx, time.Minute); err != nil || res.InboxKeys != 1 {
		t.Fatalf("purge after processing: %+v %v", res, err)
	}
}
