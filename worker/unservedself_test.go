package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/outboxd/outboxd/worker"
)

// A dispatcher resumed after a freeze longer than its heartbeat (SIGSTOP,
// SIGCONT) does not report its own destinations as served by no one: an
// operator's trial was told "no live dispatcher serves this destination
// ... (add it to a dispatcher's config)" right after SIGCONT, about a
// destination in its config. The check waits for the next balancing
// round, which renews the heartbeat. If balancing keeps failing, the
// destination is reported after LeaseTTL: the process serves nothing.
func TestAFrozenDispatcherDoesNotReportItsOwnDestinationsUnserved(t *testing.T) {
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
	var hold, release func()
	var awaiting <-chan struct{}
	cfg := b.config(t, nil)
	d := b.startWith(t, cfg, func(d *worker.Dispatcher) { hold, release, awaiting = worker.GateBalancing(d) })
	waitFor(t, 20*time.Second, `"other" reported unserved`, func() bool { return d.Unserved()["other"].Pending == 5 })

	// freeze stops balancing, lets the heartbeat lapse, and adds a message
	// of "other" (n in all), which only a check after it counts; it
	// returns once that check waits for a balancing round.
	freeze := func(n int) {
		t.Helper()
		hold()
		t.Cleanup(release) // before the dispatcher's Stop, whatever fails
		waitFor(t, 10*time.Second, "balancing stopped", func() bool { return worker.SinceHeartbeat(d) > 2*cfg.AcquireInterval })
		if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_dispatchers SET alive_until = now() - interval '1 second'`); err != nil {
			t.Fatal(err)
		}
		if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key)
			VALUES (gen_random_uuid(), 'other', '\x00', 'more' || $1::int)`, n); err != nil {
			t.Fatal(err)
		}
		select {
		case <-awaiting:
		case <-time.After(20 * time.Second):
			t.Fatal("the unserved check never waited for a balancing round")
		}
	}
	unserved := func(n int) map[string]worker.Backlog {
		t.Helper()
		var u map[string]worker.Backlog
		waitFor(t, 20*time.Second, "a check after the freeze", func() bool { u = d.Unserved(); return u["other"].Pending == int64(n) })
		return u
	}

	freeze(6)
	release() // SIGCONT
	if u := unserved(6); u["sink"].Pending != 0 {
		t.Fatalf("unserved %v after the freeze: the dispatcher reports its own destination sink", u)
	}

	// Balancing that does not come back: after LeaseTTL the check reports
	// the destination, which nothing serves.
	freeze(7)
	if u := unserved(7); u["sink"].Pending != 5 {
		t.Fatalf("unserved %v with balancing stopped for good, want sink's 5 messages", u)
	}
}
