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
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// fastRetry retries a failed job after 100 ms instead of River's seconds.
type fastRetry struct{}

func (fastRetry) NextRetry(*rivertype.JobRow) time.Time {
	return time.Now().Add(100 * time.Millisecond)
}

// Async mode: 200 at once; the handler runs later, in the transaction that
// marks the event processed; a run that dies mid-handler is rerun safely.
func TestAsyncReceipt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE leads (id bigserial PRIMARY KEY, event_id text)`); err != nil {
		t.Fatal(err)
	}
	in, _ := inbox.New(nil)
	var runs atomic.Int32
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		if _, err := tx.Exec(ctx, `INSERT INTO leads (event_id) VALUES ($1)`, d.ID); err != nil {
			return err
		}
		switch runs.Add(1) {
		case 1:
			return errors.New("worker died mid-handler") // the first run never commits
		case 2:
			panic("nil map in the async handler") // nor the second
		}
		return nil
	}
	workers := river.NewWorkers()
	b := asyncReceiver(t, pool, in, handle)
	river.AddWorker(workers, b.rc.AsyncWorker())

	now := time.Now()
	for i, want := range []string{"accepted", "duplicate"} {
		r := b.post(t, "forms", "evt_async", []byte(`{"email":"ada@example.com"}`), now, nil)
		if r.code != 200 || !strings.Contains(r.body, want) {
			t.Fatalf("delivery %d: %+v, want %s", i, r, want)
		}
	}
	ev, err := in.Get(ctx, pool, "forms", "evt_async")
	if err != nil || ev.Status != inbox.StatusReceived {
		t.Fatalf("before the worker: %+v %v", ev, err)
	}

	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema: "outboxd", Workers: workers, RetryPolicy: fastRetry{},
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}}, FetchCooldown: 20 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
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
		ev, err = in.Get(ctx, pool, "forms", "evt_async")
		if err == nil && ev.Status == inbox.StatusProcessed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not processed after 20 s: %+v %v", ev, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var leads int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM leads`).Scan(&leads); err != nil {
		t.Fatal(err)
	}
	if leads != 1 || runs.Load() != 3 {
		t.Fatalf("%d leads after %d handler runs; want 1 lead from the third run", leads, runs.Load())
	}
	// The failure log tells the panic from the error, as for a
	// synchronous source (a trial found the panic logged as "failed").
	fails, err := in.Failures(ctx, pool, "forms", "evt_async", 10)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[inbox.FailureKind]int{}
	for _, f := range fails {
		kinds[f.Kind] += f.Count
	}
	if len(kinds) != 2 || kinds[inbox.FailureFailed] != 1 || kinds[inbox.FailurePanic] != 1 {
		t.Fatalf("failures %+v; want one failed and one panic", fails)
	}
	// A redelivery after processing is a duplicate and starts no job.
	if r := b.post(t, "forms", "evt_async", []byte(`{"email":"ada@example.com"}`), now, nil); !strings.Contains(r.body, "duplicate") {
		t.Fatalf("%+v", r)
	}
	var jobs int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.river_job WHERE kind = 'outboxd_inbox_process'`).Scan(&jobs); err != nil || jobs != 1 {
		t.Fatalf("%d jobs, %v", jobs, err)
	}
}

// An async job whose handler fails for good marks its event rejected on
// the connection its run holds: on another one, jobs that held every
// connection of the pool waited for each other until River's timeout,
// were retried instead of cancelled, and the event stayed received (a
// review's, with a pool of one connection).
func TestAsyncPermanentFailureNeedsNoSecondConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=1")
	in, _ := inbox.New(nil)
	b := asyncReceiver(t, pool, in, func(context.Context, pgx.Tx, *inbox.Delivery) error {
		return inbox.Permanent(errors.New("contact list was deleted"))
	})
	for i, want := range []string{"accepted", "duplicate"} {
		if r := b.post(t, "forms", "evt_gone", []byte(`{}`), time.Now(), nil); r.code != 200 || !strings.Contains(r.body, want) {
			t.Fatalf("delivery %d: %+v, want %s", i+1, r, want)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	job := &river.Job[inbox.ProcessArgs]{JobRow: &rivertype.JobRow{ID: 1}, Args: inbox.ProcessArgs{Source: "forms", EventID: "evt_gone"}}
	err := b.rc.AsyncWorker().Work(wctx, job)
	var cancelled *rivertype.JobCancelError
	if !errors.As(err, &cancelled) {
		t.Fatalf("Work: %v; want the job cancelled", err)
	}
	ev, err := in.Get(ctx, pool, "forms", "evt_gone")
	if err != nil || ev.Status != inbox.StatusRejected {
		t.Fatalf("event %+v %v; want rejected", ev, err)
	}
}

// asyncReceiver serves an async source "forms" whose jobs run handle,
// inserted by an insert-only River client on pool.
func asyncReceiver(t *testing.T, pool *pgxpool.Pool, in *inbox.Inbox, handle inbox.HandlerFunc) *rbundle {
	t.Helper()
	v, _ := verify.StandardWebhooks(secret)
	insertOnly, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: "outboxd"})
	if err != nil {
		t.Fatal(err)
	}
	return serveReceiver(t, pool, in, &inbox.ReceiverConfig{
		Sources: []inbox.Source{{Name: "forms", Verifier: v, Handle: handle, Async: true}},
		River:   insertOnly,
	})
}
