package worker_test

import (
	"context"
	"strings"
	"testing"

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
