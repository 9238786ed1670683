package worker_test

import (
	"context"
	"testing"
	"time"
)

// A dispatcher whose own heartbeat lapsed (the process frozen by SIGSTOP,
// its renewals held up) does not report its own destinations as served by
// no one: an operator's trial got "no live dispatcher serves this
// destination ... (add it to a dispatcher's config)" right after SIGCONT
// of the only dispatcher, about a destination in its config. Another
// destination with pending messages is still reported, its count growing,
// which shows the check ran while the heartbeat was out of date.
func TestALapsedHeartbeatDoesNotMakeOwnDestinationsUnserved(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// "sink" is paused, so its messages stay pending; "other" has no
	// dispatcher at all.
	for _, q := range []string{
		`INSERT INTO outboxd.outbox_destinations (name, paused, reason, paused_at) VALUES ('sink', true, 'test', now())`,
		`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key)
		 SELECT gen_random_uuid(), d, '\x00', d || i FROM generate_series(1, 5) i, unnest(ARRAY['sink', 'other']) d`,
	} {
		if _, err := b.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	d := b.start(t, b.config(t, nil))
	// The check runs (it starts once the dispatcher has registered).
	waitFor(t, 20*time.Second, `"other" reported unserved`, func() bool { return d.Unserved()["other"].Pending == 5 })
	// The heartbeat out of date, and kept so: a lock that lets the check
	// read the table but holds up every write to it.
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_dispatchers SET alive_until = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE outboxd.outbox_dispatchers IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	// A sixth message of "other", counted by a check that read the
	// lapsed heartbeat.
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key)
		VALUES (gen_random_uuid(), 'other', '\x00', 'other6')`); err != nil {
		t.Fatal(err)
	}
	var unserved map[string]bool
	waitFor(t, 20*time.Second, "a check after the heartbeat lapsed", func() bool {
		u := d.Unserved()
		unserved = map[string]bool{}
		for name := range u {
			unserved[name] = true
		}
		return u["other"].Pending == 6
	})
	if unserved["sink"] {
		t.Fatalf("unserved %v: the dispatcher reports its own destination sink", unserved)
	}
}
