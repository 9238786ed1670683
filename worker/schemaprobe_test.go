package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/migrations"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// A dispatcher started on a schema older than its statements (deployed
// before `outboxd migrate up`) refuses to start and says what to run,
// instead of sending messages it then cannot record, and sending them
// again for as long as it runs.
func TestStartRefusesAnOlderSchema(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	s := sink.Start()
	t.Cleanup(s.Close)
	ob, _ := outbox.New(nil)
	b := bundle{pool: pgtest.Connect(t, url), outbox: ob, sink: s}
	ctx := context.Background()
	m, err := migrations.New(pgtest.SQLDB(t, url), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.DownTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "sink", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	d, err := worker.New(b.pool, b.config(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	err = d.Start(ctx)
	if err == nil {
		_ = d.Stop(ctx)
		t.Fatal("started on a schema at version 12")
	}
	if !strings.Contains(err.Error(), "outboxd migrate up") || !strings.Contains(err.Error(), "migration 13") {
		t.Fatalf("error %q does not say to migrate", err)
	}
	if n := len(b.sink.Requests()); n != 0 {
		t.Fatalf("%d requests sent by a dispatcher that did not start", n)
	}
}

// A schema taken back while the dispatcher runs (`outboxd migrate down`
// before stopping it) makes the recording fail after each batch was sent.
// The dispatcher then stops claiming (nothing is sent again and again:
// before, about 20 times a second), says so, turns unready, and resumes
// once the schema is migrated again, delivering each message.
func TestMigrateDownUnderARunningDispatcherStopsSending(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	s := sink.Start()
	t.Cleanup(s.Close)
	ob, _ := outbox.New(nil)
	b := bundle{pool: pgtest.Connect(t, url+"&pool_max_conns=10"), outbox: ob, sink: s}
	ctx := context.Background()
	d := b.start(t, b.config(t, nil))
	m, err := migrations.New(pgtest.SQLDB(t, url), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.DownTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	b.enqueue(t, 5, 5, func(int) string { return "" })
	waitFor(t, 20*time.Second, "a first send, then the dispatcher unready", func() bool {
		return len(b.sink.Requests()) > 0 && !d.Ready()
	})
	// Claims have stopped: over 1.5 s the old code sent each message about
	// 30 more times. A runner that claimed before the first failure may
	// still send its message once.
	time.Sleep(1500 * time.Millisecond)
	for k, n := range perKey(b.sink.Requests()) {
		if n > 1 {
			t.Fatalf("key %s sent %d times while the schema was behind: the dispatcher kept sending", k, n)
		}
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 5 {
		t.Fatalf("statuses %v after migrating up again", c)
	}
	waitFor(t, 10*time.Second, "the dispatcher to be ready again", d.Ready)
	for k, n := range perKey(b.sink.Requests()) {
		if n > 2 {
			t.Errorf("key %s sent %d times; want at most twice (before the schema went back, after it came back)", k, n)
		}
	}
}

// waitFor polls cond until it holds, failing after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// perKey counts the requests of each idempotency key.
func perKey(reqs []sink.Request) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		out[r.IdempotencyKey]++
	}
	return out
}
