package main

import (
	"context"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/outbox"
)

func TestOutboxCommands(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	var ids []string
	for _, typ := range []string{"a", "a", "b"} {
		e, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "crm", Type: typ, Payload: []byte("{}")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID.String())
	}
	// Dead-letter them as a dispatcher would after a 400.
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'dead', attempts = 1, last_error = 'HTTP 400 Bad Request'`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.outbox_destinations (name, paused, reason, paused_at) VALUES ('gone-api', true, 'HTTP 410', now())`); err != nil {
		t.Fatal(err)
	}
	db := []string{"--database-url", b.url}
	run := func(args ...string) result {
		t.Helper()
		return runIn(append(args, db...)...)
	}

	r := run("outbox", "dead", "--type", "a")
	if r.code != 0 || strings.Count(r.stdout, "HTTP 400") != 2 || !strings.Contains(r.stdout, ids[0]) {
		t.Fatalf("dead: %+v", r)
	}
	if r := run("outbox", "requeue", "--id", ids[0]); r.code != 0 || !strings.Contains(r.stdout, "requeued 1") {
		t.Fatalf("requeue: %+v", r)
	}
	if s := b.status(t); s["pending"] != 1 || s["dead"] != 2 {
		t.Fatalf("after requeue: %v", s)
	}
	// An id that is no dead letter (pending now, or unknown) is said so:
	// "requeued 0" alone looked clean (a trial's).
	if r := run("outbox", "requeue", "--id", ids[0], "--id", "018f0000-0000-7000-8000-000000000000"); r.code != 0 || !strings.Contains(r.stdout, "requeued 0") ||
		!strings.Contains(r.stderr, "2 of the 2 ids given are not dead letters the filters match") {
		t.Fatalf("requeue of ids that are no dead letters: %+v", r)
	}
	if r := run("outbox", "show", ids[0]); r.code != 0 || !strings.Contains(r.stdout, "pending") || !strings.Contains(r.stdout, ids[0]) {
		t.Fatalf("show: %+v", r)
	}
	if r := run("outbox", "purge"); r.code != 2 || !strings.Contains(r.stderr, "--all") {
		t.Fatalf("purge without a filter must refuse: %+v", r)
	}
	if r := run("outbox", "purge", "--destination", "crm", "--since", "1h"); r.code != 0 || !strings.Contains(r.stdout, "purged 2") {
		t.Fatalf("purge: %+v", r)
	}
	if r := run("outbox", "paused"); r.code != 0 || !strings.Contains(r.stdout, "gone-api") {
		t.Fatalf("paused: %+v", r)
	}
	if r := run("outbox", "resume", "gone-api"); r.code != 0 {
		t.Fatalf("resume: %+v", r)
	}
	if r := run("outbox", "resume", "gone-api"); r.code != 1 || !strings.Contains(r.stderr, "not paused") {
		t.Fatalf("second resume: %+v", r)
	}
	for _, bad := range [][]string{{"outbox", "show"}, {"outbox", "show", "nope"}, {"outbox", "fly"}, {"outbox", "dead", "--since", "yesterday"}} {
		if r := run(bad...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", bad, r.code, r.stderr)
		}
	}
}
