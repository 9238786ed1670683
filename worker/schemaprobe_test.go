package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/internal/syncbuf"
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
	// 12: the dispatcher's columns are missing; 13: the retry heads'
	// index (without it a sweep would read the lane's whole keyed
	// backlog); 14 with that index invalid, as a CONCURRENTLY build cut
	// short leaves it (`migrate up` interrupted: the version stays 13).
	for _, version := range []int64{12, 13, 14} {
		t.Run(fmt.Sprint(version), func(t *testing.T) {
			t.Parallel()
			b, m := migratable(t, nil)
			ctx := context.Background()
			if _, err := m.DownTo(ctx, version); err != nil {
				t.Fatal(err)
			}
			if version == 14 {
				if _, err := b.pool.Exec(ctx, `UPDATE pg_index SET indisvalid = false
					WHERE indexrelid = 'outboxd.outbox_messages_retry_heads_idx'::regclass`); err != nil {
					t.Fatal(err)
				}
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
				t.Fatalf("started on a schema at version %d", version)
			}
			if !strings.Contains(err.Error(), "outboxd migrate up") || !strings.Contains(err.Error(), "migration 14") {
				t.Fatalf("error %q does not say to migrate", err)
			}
			if n := len(b.sink.Requests()); n != 0 {
				t.Fatalf("%d requests sent by a dispatcher that did not start", n)
			}
		})
	}
}

// A schema taken back while the dispatcher runs (`outboxd migrate down`
// before stopping it) is noticed without any traffic: the dispatcher
// turns unready within a lane-balancing round and claims nothing, so a
// message enqueued meanwhile is sent once, after the schema is migrated
// again. Before, it stayed ready until a message came, sent it, failed to
// record it, and sent it again after the migration (an operator's trial).
func TestMigrateDownUnderAnIdleDispatcherIsNoticed(t *testing.T) {
	t.Parallel()
	b, m := migratable(t, nil)
	ctx := context.Background()
	d := b.start(t, b.config(t, nil))
	waitFor(t, 20*time.Second, "the dispatcher ready", d.Ready)
	if _, err := m.DownTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the dispatcher unready, with nothing enqueued", func() bool { return !d.Ready() })
	b.enqueue(t, 5, 5, func(int) string { return "" })
	upAndDeliveredOnce(t, b, m, 5)
}

// The same with lanes parked (idle.go) when the commit comes, their next
// idle round 5 s away: the commit's wake-up unparks them, and the schema
// check still comes before their claim (a review found them claiming and
// sending 5 messages whose results the old schema could not record).
func TestMigrateDownUnderParkedLanesSendsNothing(t *testing.T) {
	t.Parallel()
	b, m := migratable(t, nil)
	ctx := context.Background()
	reg, metrics := newMetrics(t)
	d := b.start(t, b.config(t, func(c *worker.Config) { c.Metrics = metrics; c.SweepInterval = 5 * time.Second }))
	waitFor(t, 20*time.Second, "the dispatcher ready", d.Ready)
	waitFor(t, 20*time.Second, "the 32 lanes parked and probed", func() bool { return idleProbes(t, reg, "sink") >= 32 })
	if _, err := m.DownTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the dispatcher unready", func() bool { return !d.Ready() })
	b.enqueue(t, 5, 5, func(int) string { return "" })
	time.Sleep(1500 * time.Millisecond) // the wake-ups came (5 ms each); no round in it
	if n := len(b.sink.Requests()); n != 0 {
		t.Errorf("%d requests sent while the schema was behind", n)
	}
	upAndDeliveredOnce(t, b, m, 5)
}

// A batch claimed just before the schema went back is sent, and its
// recording fails: the dispatcher then stops claiming (nothing is sent
// again and again: before, about 20 times a second), says so, turns
// unready, and resumes once the schema is migrated again, delivering each
// message.
func TestMigrateDownUnderARunningDispatcherStopsSending(t *testing.T) {
	t.Parallel()
	b, m := migratable(t, nil)
	ctx := context.Background()
	d := b.start(t, b.config(t, nil))
	b.enqueue(t, 5, 5, func(int) string { return "" })
	if _, err := m.DownTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the dispatcher unready", func() bool { return !d.Ready() })
	// Claims have stopped: over 1.5 s the old code sent each message about
	// 30 more times. A runner that claimed before the schema went back may
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

// perKey counts the requests of each idempotency key.
func perKey(reqs []sink.Request) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		out[r.IdempotencyKey]++
	}
	return out
}

// A recording that keeps failing (here a trigger refuses it; a
// permission, a constraint, a timeout or a role out of connections would
// too) is tried again after a growing backoff that commit notifications do
// not cut short, and the batch is not sent again while the lane's lease
// holds: once the database takes the results, the message was sent once.
// Every NOTIFY once woke the runner at once (one message sent 141 times in
// 3 s beside a NOTIFY every 20 ms); then each retry sent the batch again
// (a trial's role out of connections: 94 of 800 messages delivered twice),
// and each refused recording counted the attempt in the metric again.
func TestFailingRecordingBacksOffDespiteNotifications(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.pool.Exec(ctx, `
CREATE SEQUENCE refusals; -- counts past the refused statement's rollback
CREATE FUNCTION outboxd.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM nextval('public.refusals'); RAISE EXCEPTION 'recording refused'; END $$;
CREATE TRIGGER test_refuse BEFORE UPDATE ON outboxd.outbox_messages
FOR EACH ROW WHEN (NEW.status = 'delivered') EXECUTE FUNCTION outboxd.test_refuse();`); err != nil {
		t.Fatal(err)
	}
	reg, m := newMetrics(t)
	b.start(t, b.config(t, func(c *worker.Config) { c.SweepInterval, c.Metrics = 5*time.Second, m }))
	b.enqueue(t, 1, 1, func(int) string { return "" })
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_, _ = b.pool.Exec(ctx, `SELECT pg_notify('outboxd_outbox', 'all')`)
			}
		}
	}()
	// Recordings at 0, 0.1, 0.3, 0.7, 1.5 s: five refused in two seconds.
	waitFor(t, 20*time.Second, "the recording refused twice", func() bool {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM refusals`).Scan(&n)
		return err == nil && n >= 2
	})
	time.Sleep(time.Second)
	close(stop)
	<-done
	var refused int
	if err := b.pool.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM refusals`).Scan(&refused); err != nil {
		t.Fatal(err)
	}
	if refused > 12 {
		t.Fatalf("the recording tried %d times in about 2 s; want a few (backoff 100 ms, doubling)", refused)
	}
	if n := len(b.sink.Requests()); n != 1 {
		t.Fatalf("%d sends of one message while its recording failed %d times; want 1", n, refused)
	}
	if _, err := b.pool.Exec(ctx, `DROP TRIGGER test_refuse ON outboxd.outbox_messages`); err != nil {
		t.Fatal(err)
	}
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 1 {
		t.Fatalf("statuses %v once the recording is taken", c)
	}
	if n := len(b.sink.Requests()); n != 1 {
		t.Fatalf("%d sends of one message; want 1", n)
	}
	// One attempt, counted once (each recording counted it: a trial's
	// metric said 2006 deliveries of 2004 messages).
	checkAttempts(t, reg, map[string]int{"delivered": 1})
}

// The schema is looked for again even when no lane runner could probe it
// (every destination paused, here by a 410): taken back, the dispatcher
// turns unready, and after migrate up it is ready again.
func TestSchemaGateReopensWithEveryDestinationPaused(t *testing.T) {
	t.Parallel()
	b, m := migratable(t, func(*http.Request, []byte) (int, http.Header) { return http.StatusGone, nil })
	ctx := context.Background()
	d := b.start(t, b.config(t, nil))
	waitFor(t, 10*time.Second, "the dispatcher ready", d.Ready)
	b.enqueue(t, 1, 1, func(int) string { return "" })
	waitFor(t, 10*time.Second, "the only destination paused by a 410", func() bool {
		var paused bool
		err := b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outboxd.outbox_destinations WHERE name = 'sink' AND paused)`).Scan(&paused)
		return err == nil && paused
	})
	if _, err := m.DownTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the dispatcher unready", func() bool { return !d.Ready() })
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the dispatcher ready again, its only destination paused", d.Ready)
}

// A schema taken back past the leases' table and migrated up again while
// the dispatcher runs (a trial's `migrate down --to 5`, then `up`) leaves
// no lane rows: every process said "delivery resumes" and was ready, and
// nothing was sent until one restarted. The lane rows are made again, and
// messages enqueued after it are delivered.
func TestMigrateDownPastTheLanesAndUpAgainResumesDelivery(t *testing.T) {
	t.Parallel()
	b, m := migratable(t, nil)
	ctx := context.Background()
	d := b.start(t, b.config(t, nil))
	waitFor(t, 10*time.Second, "the dispatcher ready", d.Ready)
	if _, err := m.DownTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	b.enqueue(t, 3, 3, func(i int) string { return fmt.Sprintf("k%d", i) })
	if c := b.waitSettled(t, 30*time.Second); c["delivered"] != 3 {
		t.Fatalf("statuses %v after migrating down past the lanes and up again", c)
	}
}

// Lane rows gone without a schema error (a down and up between two of the
// dispatcher's statements, an operator's DELETE) are made again too: each
// destination's within ensureLanesEvery of the dispatcher holding none of
// its lanes, not one destination per 5 s (a review's 5 destinations came
// back 0.1, 5.3, 10.3, 15.5 and 20.4 s after the DELETE).
func TestLostLaneRowsAreMadeAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	names := []string{"sink", "sink2", "sink3"}
	d := b.start(t, b.config(t, func(c *worker.Config) {
		for _, name := range names[1:] {
			dest, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: b.sink.URL()})
			if err != nil {
				t.Fatal(err)
			}
			c.Destinations[name] = dest
		}
	}))
	waitFor(t, 10*time.Second, "the dispatcher ready", d.Ready)
	if _, err := b.pool.Exec(ctx, `DELETE FROM outboxd.outbox_lanes`); err != nil {
		t.Fatal(err)
	}
	back := map[string]time.Time{}
	waitFor(t, 30*time.Second, "every destination's lanes made again", func() bool {
		rows, err := b.pool.Query(ctx, `SELECT DISTINCT destination FROM outboxd.outbox_lanes`)
		if err != nil {
			return false
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return false
		}
		for _, name := range found {
			if _, ok := back[name]; !ok {
				back[name] = time.Now()
			}
		}
		return len(back) == len(names)
	})
	first, last := back["sink"], back["sink"]
	for _, at := range back {
		if at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	if spread := last.Sub(first); spread >= 5*time.Second {
		t.Errorf("the destinations' lanes came back %s apart; want them within ensureLanesEvery (5 s) of each other", spread)
	}
	b.enqueue(t, 3, 3, func(i int) string { return fmt.Sprintf("k%d", i) })
	if c := b.waitSettled(t, 30*time.Second); c["delivered"] != 3 {
		t.Fatalf("statuses %v after the lane rows were deleted", c)
	}
}

// migratable is a bundle on a database of its own, with a Migrator to
// take its schema back and forth, and a sink answering respond (nil: 200).
// upAndDeliveredOnce migrates up again and waits for the n messages
// enqueued meanwhile, each sent once, after the schema came back.
func upAndDeliveredOnce(t *testing.T, b bundle, m *migrations.Migrator, n int) {
	t.Helper()
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != n {
		t.Fatalf("statuses %v after migrating up again", c)
	}
	for k, sent := range perKey(b.sink.Requests()) {
		if sent != 1 {
			t.Errorf("key %s sent %d times; want once, after the schema came back", k, sent)
		}
	}
}

func migratable(t *testing.T, respond func(*http.Request, []byte) (int, http.Header)) (bundle, *migrations.Migrator) {
	t.Helper()
	url := pgtest.URL(t)
	s := sink.Start()
	t.Cleanup(s.Close)
	s.Respond = respond
	ob, _ := outbox.New(nil)
	m, err := migrations.New(pgtest.SQLDB(t, url), nil)
	if err != nil {
		t.Fatal(err)
	}
	return bundle{pool: pgtest.Connect(t, url+"&pool_max_conns=10"), outbox: ob, sink: s}, m
}

// The look at the schema never holds the leases' renewals: behind a lock
// on outbox_messages (a VACUUM FULL, an ALTER queued behind a long
// transaction) it waits up to 5 s, and made in the balancing round it let
// every lease of a 2 s LeaseTTL lapse (a review's). It is seen waiting on
// the lock in pg_stat_activity before the leases are watched for twice
// LeaseTTL.
func TestTheSchemaLookDoesNotHoldRenewals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Room for the 32 runners' claims, which wait on the lock too.
	b.pool = pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=60")
	ctx := context.Background()
	b.start(t, b.config(t, func(c *worker.Config) { c.LeaseTTL, c.AcquireInterval = 2*time.Second, 200*time.Millisecond }))
	waitReady(t, b)
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE outboxd.outbox_messages IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the schema's look waiting on the lock", func() bool {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%first_attempt_by%LIMIT 0%'`).Scan(&n)
		return err == nil && n > 0
	})
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		var n int
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_lanes WHERE owner IS NOT NULL AND lease_until > now()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n < 32 {
			t.Fatalf("while outbox_messages was locked, %d of 32 leases stayed current", n)
		}
	}
}

// A table renamed under a running dispatcher (an operator's trial) stops
// delivery, and the log says that, not that the database went down and
// came back: counted as an outage, the failing statements logged
// "database operation failed", then the renewals, which still worked,
// "database operations succeed again", while nothing could be claimed.
// The failures are counted with the cause schema.
func TestATableRenamedIsNotLoggedAsAnOutage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	log := &syncbuf.Buffer{}
	reg, metrics := newMetrics(t)
	d := b.start(t, b.config(t, func(c *worker.Config) {
		c.Metrics = metrics
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
	}))
	waitFor(t, 20*time.Second, "the 32 lanes parked and probed", func() bool { return idleProbes(t, reg, "sink") >= 32 })
	if _, err := b.pool.Exec(ctx, `ALTER TABLE outboxd.outbox_messages RENAME TO outbox_messages_away`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a statement failing for the schema", func() bool {
		return databaseErrors(t, reg, "schema") > 0 && !d.Ready()
	})
	if _, err := b.pool.Exec(ctx, `ALTER TABLE outboxd.outbox_messages_away RENAME TO outbox_messages`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the dispatcher ready again", d.Ready)
	b.enqueue(t, 3, 3, func(int) string { return "" })
	waitFor(t, 20*time.Second, "3 messages delivered", func() bool { return len(b.sink.Accepted()) == 3 })
	text := log.String()
	if !strings.Contains(text, "delivery stopped") {
		t.Errorf("the log does not say that delivery stopped:\n%s", text)
	}
	// An outage line may come from this machine's load (an idle probe
	// past its second); none may be the schema's, and without one no
	// outage ended.
	outages := 0
	for line := range strings.Lines(text) {
		if strings.Contains(line, "database operation failed") || strings.Contains(line, "still failing") {
			outages++
			if strings.Contains(line, "42P01") {
				t.Errorf("a renamed table logged as an outage:\n%s", line)
			}
		}
	}
	if outages == 0 && strings.Contains(text, "succeed again") {
		t.Errorf("the end of an outage logged, none begun:\n%s", text)
	}
}

// databaseErrors sums outboxd_database_errors_total over the operations
// for cause.
func databaseErrors(t *testing.T, reg *prometheus.Registry, cause string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "outboxd_database_errors_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "cause" && l.GetValue() == cause {
					n += s.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// outbox_attempts renamed under a running dispatcher (an operator's
// trial): every recording names it and fails, and the schema probe, which
// did not, found the schema current a second later, so the lanes claimed
// and sent again, the log saying "delivery stopped" and "delivery
// resumes" every second (8 of 10 messages sent meanwhile). The probe now
// looks for the dispatcher's tables: delivery stays stopped until the
// table is back, and each message is then recorded, none sent twice.
func TestARenamedAttemptsTableStopsDeliveryUntilItIsBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	log := &syncbuf.Buffer{}
	d := b.start(t, b.config(t, func(c *worker.Config) { c.Logger = slog.New(slog.NewTextHandler(log, nil)) }))
	waitFor(t, 20*time.Second, "the dispatcher ready", d.Ready)
	if _, err := b.pool.Exec(ctx, `ALTER TABLE outboxd.outbox_attempts RENAME TO outbox_attempts_away`); err != nil {
		t.Fatal(err)
	}
	key := func(i int) string { return fmt.Sprintf("k%d", i) }
	b.enqueue(t, 5, 5, key)
	waitFor(t, 20*time.Second, "delivery stopped", func() bool { return strings.Contains(log.String(), "delivery stopped") })
	// More commits, which the old code claimed and sent at its next
	// "delivery resumes" (a claim that passed its check before delivery
	// stopped, waiting for a pooled connection, may still take one). The
	// old probe found the schema current within a second (it runs every
	// acquire interval, 200 ms here, at most once a second): three.
	b.enqueue(t, 5, 5, func(i int) string { return key(i + 5) })
	time.Sleep(3 * time.Second)
	if text := log.String(); strings.Contains(text, "delivery resumes") {
		t.Fatalf("delivery resumed with outbox_attempts away:\n%s", text)
	}
	if _, err := b.pool.Exec(ctx, `ALTER TABLE outboxd.outbox_attempts_away RENAME TO outbox_attempts`); err != nil {
		t.Fatal(err)
	}
	if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 10 {
		t.Fatalf("statuses %v once outbox_attempts was back", c)
	}
	for k, n := range perKey(b.sink.Requests()) {
		if n != 1 {
			t.Errorf("key %s sent %d times", k, n)
		}
	}
}
