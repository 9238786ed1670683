package inbox_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/pgtest"
)

type bundle struct {
	pool  *pgxpool.Pool
	inbox *inbox.Inbox
}

// setup gives the test its own migrated database with a business table,
// leads, that stands for the handler's effects.
func setup(t *testing.T, cfg *inbox.Config) bundle {
	t.Helper()
	pool := pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=20")
	if _, err := pool.Exec(context.Background(), `CREATE TABLE leads (id bigserial PRIMARY KEY, source text, event_id text, email text)`); err != nil {
		t.Fatal(err)
	}
	in, err := inbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return bundle{pool: pool, inbox: in}
}

// deliver runs one receipt the way a webhook handler does: record, and when
// new, write the business row in the same transaction; then commit.
func (b bundle) deliver(t *testing.T, ev inbox.Event) inbox.Result {
	t.Helper()
	res, err := b.receive(context.Background(), ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// receive is deliver with a hook that runs inside the transaction after the
// business write, and that may fail it.
func (b bundle) receive(ctx context.Context, ev inbox.Event, during func(pgx.Tx) error) (inbox.Result, error) {
	var res inbox.Result
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var err error
		res, err = b.inbox.Record(ctx, tx, ev)
		if err != nil || !res.New {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO leads (source, event_id, email) VALUES ($1, $2, $3)`, ev.Source, ev.ID, ev.Refs["email"]); err != nil {
			return err
		}
		if during != nil {
			return during(tx)
		}
		return nil
	})
	return res, err
}

func (b bundle) leads(t *testing.T) int {
	t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM leads`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func event(source, id string) inbox.Event {
	return inbox.Event{
		Source:  source,
		ID:      id,
		Type:    "lead.created",
		Payload: []byte(`{"id":"` + id + `","email":"ada@example.com"}` + "\n"),
		Headers: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer secret"}, "Webhook-Id": {id}},
		Refs:    map[string]string{"email": "ada@example.com"},
	}
}

func TestDuplicateInARow(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	ev := event("forms", "evt_1")

	first := b.deliver(t, ev)
	if !first.New || first.Duplicates != 0 || first.Status != inbox.StatusProcessed {
		t.Fatalf("first delivery: %+v", first)
	}
	afterOne, err := b.inbox.Get(ctx, b.pool, "forms", "evt_1")
	if err != nil {
		t.Fatal(err)
	}
	second := b.deliver(t, ev)
	if second.New || second.Duplicates != 1 {
		t.Fatalf("second delivery: %+v", second)
	}
	if !second.FirstReceivedAt.Equal(first.FirstReceivedAt) {
		t.Errorf("first-received time moved: %v -> %v", first.FirstReceivedAt, second.FirstReceivedAt)
	}
	if n := b.leads(t); n != 1 {
		t.Fatalf("%d leads after two deliveries, want 1", n)
	}
	afterTwo, err := b.inbox.Get(ctx, b.pool, "forms", "evt_1")
	if err != nil {
		t.Fatal(err)
	}
	if afterTwo.DuplicateCount != 1 || !afterTwo.LastSeenAt.After(afterOne.LastSeenAt) {
		t.Errorf("duplicate not counted: count %d, last seen %v -> %v", afterTwo.DuplicateCount, afterOne.LastSeenAt, afterTwo.LastSeenAt)
	}
	// What was stored is the first delivery, as received, minus credentials.
	if string(afterTwo.Payload) != string(ev.Payload) {
		t.Errorf("payload %q, want %q", afterTwo.Payload, ev.Payload)
	}
	if afterTwo.Headers.Get("Authorization") != "" {
		t.Error("Authorization header was stored")
	}
	if afterTwo.Headers.Get("Webhook-Id") != "evt_1" || afterTwo.Refs["email"] != "ada@example.com" {
		t.Errorf("headers/refs not stored: %v %v", afterTwo.Headers, afterTwo.Refs)
	}
	if afterTwo.ProcessedAt == nil || afterTwo.Type != "lead.created" {
		t.Errorf("processed_at %v, type %q", afterTwo.ProcessedAt, afterTwo.Type)
	}
}

func TestConcurrentDeliveriesOfOneEvent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	ev := event("forms", "evt_storm")

	const n = 50
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mu    sync.Mutex
		news  int
		errs  []error
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := b.receive(ctx, ev, func(tx pgx.Tx) error {
				// Hold the first transaction open so the others pile up
				// behind its row lock.
				_, err := tx.Exec(ctx, `SELECT pg_sleep(0.2)`)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if res.New {
				news++
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d deliveries failed, first: %v", len(errs), errs[0])
	}
	if news != 1 {
		t.Fatalf("%d deliveries saw New, want exactly 1", news)
	}
	if got := b.leads(t); got != 1 {
		t.Fatalf("%d leads, want 1", got)
	}
	stored, err := b.inbox.Get(ctx, b.pool, ev.Source, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.DuplicateCount != n-1 {
		t.Fatalf("duplicate count %d, want %d", stored.DuplicateCount, n-1)
	}
}

func TestRollbackThenRedelivery(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	ev := event("forms", "evt_rb")
	boom := errors.New("downstream of the handler failed")

	if _, err := b.receive(ctx, ev, func(pgx.Tx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("want the handler's error, got %v", err)
	}
	if n := b.leads(t); n != 0 {
		t.Fatalf("%d leads after rollback", n)
	}
	if _, err := b.inbox.Get(ctx, b.pool, ev.Source, ev.ID); !errors.Is(err, inbox.ErrNotFound) {
		t.Fatalf("record survived rollback: %v", err)
	}
	for i, wantNew := range []bool{true, false} {
		if res := b.deliver(t, ev); res.New != wantNew {
			t.Fatalf("redelivery %d: New=%v, want %v", i, res.New, wantNew)
		}
	}
	if n := b.leads(t); n != 1 {
		t.Fatalf("%d leads, want 1", n)
	}
}

func TestConcurrentDeliveryWaitsForFirstAndSeesItsRollback(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	ev := event("forms", "evt_wait")

	first, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.inbox.Record(ctx, first, ev)
	if err != nil || !res.New {
		t.Fatalf("first: %+v %v", res, err)
	}
	done := make(chan inbox.Result, 1)
	go func() { done <- b.deliver(t, ev) }()
	select {
	case r := <-done:
		t.Fatalf("second delivery did not wait for the first: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	if err := first.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if second := <-done; !second.New {
		t.Fatalf("after the first rolled back, the waiting delivery saw %+v, want New", second)
	}
	if res := b.deliver(t, ev); res.New {
		t.Fatal("third delivery was New")
	}
	if n := b.leads(t); n != 1 {
		t.Fatalf("%d leads, want 1", n)
	}
}

func TestExpiredKeyIsNewAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, &inbox.Config{SourceTTL: map[string]time.Duration{"short": 90 * time.Minute}})
	ctx := context.Background()
	ev := event("short", "evt_exp")

	if !b.deliver(t, ev).New || b.deliver(t, ev).New {
		t.Fatal("inside the window: want New then duplicate")
	}
	stored, err := b.inbox.Get(ctx, b.pool, ev.Source, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ttl := stored.ExpiresAt.Sub(stored.ReceivedAt); ttl < 90*time.Minute || ttl > 90*time.Minute+time.Second {
		t.Fatalf("key kept for %s, want the source's 90m", ttl)
	}
	// Let the window pass.
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.inbox_events SET expires_at = now() - interval '1 second' WHERE source = 'short'`); err != nil {
		t.Fatal(err)
	}
	ev.Refs = map[string]string{"email": "replay@example.com"}
	replay := b.deliver(t, ev)
	if !replay.New || replay.Duplicates != 0 {
		t.Fatalf("after expiry: %+v, want New", replay)
	}
	if again := b.deliver(t, ev); again.New {
		t.Fatal("second delivery of the replay was New")
	}
	stored, err = b.inbox.Get(ctx, b.pool, ev.Source, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Refs["email"] != "replay@example.com" || stored.DuplicateCount != 1 || !stored.ExpiresAt.After(time.Now().Add(89*time.Minute)) {
		t.Fatalf("replayed record: refs %v, duplicates %d, expires %v", stored.Refs, stored.DuplicateCount, stored.ExpiresAt)
	}
	if n := b.leads(t); n != 2 {
		t.Fatalf("%d leads, want 2 (original and deliberate replay)", n)
	}
	// Other sources keep the default window.
	if ttl := b.inbox.TTL("other"); ttl != 96*time.Hour {
		t.Fatalf("default TTL %s", ttl)
	}
}

func TestSameIDFromTwoSources(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, src := range []string{"stripe", "github", "stripe", "github"} {
		b.deliver(t, event(src, "evt_shared"))
	}
	if n := b.leads(t); n != 2 {
		t.Fatalf("%d leads, want one per source", n)
	}
}

func TestRefsSearchAndStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()

	ev := event("forms", "evt_async")
	ev.Status = inbox.StatusReceived
	for range 2 {
		b.deliver(t, ev)
	}
	if err := b.inbox.AddRefs(ctx, b.pool, "forms", "evt_async", map[string]string{"contact_id": "c_42"}); err != nil {
		t.Fatal(err)
	}
	found, err := b.inbox.FindByRef(ctx, b.pool, "contact_id", "c_42", 10)
	if err != nil || len(found) != 1 || found[0].ID != "evt_async" || found[0].Refs["email"] != "ada@example.com" {
		t.Fatalf("find by contact id: %+v %v", found, err)
	}
	if found[0].Status != inbox.StatusReceived || found[0].ProcessedAt != nil {
		t.Fatalf("status %s", found[0].Status)
	}
	// MarkProcessed is a compare-and-swap: only the first call changes it.
	for i, want := range []bool{true, false} {
		changed, err := b.inbox.MarkProcessed(ctx, b.pool, "forms", "evt_async")
		if err != nil || changed != want {
			t.Fatalf("mark processed %d: %v %v, want %v", i, changed, err, want)
		}
	}
	if err := b.inbox.MarkRejected(ctx, b.pool, "forms", "evt_async", "customer never existed"); err != nil {
		t.Fatal(err)
	}
	stored, err := b.inbox.Get(ctx, b.pool, "forms", "evt_async")
	if err != nil || stored.Status != inbox.StatusRejected || stored.Reason != "customer never existed" {
		t.Fatalf("%+v %v", stored, err)
	}
	if err := b.inbox.AddRefs(ctx, b.pool, "forms", "nope", map[string]string{"a": "b"}); !errors.Is(err, inbox.ErrNotFound) {
		t.Fatalf("add refs to unknown event: %v", err)
	}
	none, err := b.inbox.FindByRef(ctx, b.pool, "email", "nobody@example.com", 10)
	if err != nil || len(none) != 0 {
		t.Fatalf("%v %v", none, err)
	}
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	for _, ev := range []inbox.Event{{Source: "s"}, {ID: "x"}, {Source: "s", ID: "x", Status: "weird"}} {
		if _, err := b.inbox.Record(ctx, b.pool, ev); !errors.Is(err, inbox.ErrInvalidEvent) {
			t.Errorf("%+v: %v", ev, err)
		}
	}
	for _, cfg := range []*inbox.Config{{Schema: "Nope"}, {TTL: -time.Second}, {SourceTTL: map[string]time.Duration{"x": 0}}} {
		if _, err := inbox.New(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}
