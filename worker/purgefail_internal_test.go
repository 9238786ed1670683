package worker

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/syncbuf"
)

// A purge that fails says so, and for a refused privilege where the grants
// are: River logs a failed job at info, which the dispatcher's River
// logger drops (an operator's trial found a purge failing for an hour
// without a line).
func TestAFailedPurgeIsLogged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	roleURL, _ := RuntimeRoleURL(t, dbURL, "outboxd_nodelete", "REVOKE DELETE ON outboxd.inbox_failures FROM %s")
	if _, err := pgtest.Connect(t, dbURL).Exec(ctx, `INSERT INTO outboxd.inbox_failures (source, event_id, kind, reason, status_code, last_at)
		VALUES ('s', 'old', 'failed', 'x', 503, now() - interval '30 days')`); err != nil {
		t.Fatal(err)
	}
	d, logs := purgeDispatcher(t, pgtest.Connect(t, roleURL))
	if err := (&maintenanceWorker{d: d}).Work(ctx, nil); err == nil {
		t.Fatal("the purge succeeded without DELETE on inbox_failures")
	}
	if text := logs.String(); !strings.Contains(text, "the purge failed; the role lacks a privilege") ||
		!strings.Contains(text, "Roles and grants") || !strings.Contains(text, "inbox_failures") {
		t.Fatalf("the failed purge's log:\n%s", text)
	}
}

// RuntimeRoleURL creates a login role named prefix_<random> with the
// runtime grants on outboxd's tables, runs each of then (its %s the role)
// as the database's owner, and returns dbURL as that role, and the role;
// the role goes when the test ends.
func RuntimeRoleURL(t *testing.T, dbURL, prefix string, then ...string) (roleURL, role string) {
	t.Helper()
	ctx := context.Background()
	role = prefix + "_" + strings.ToLower(rand.Text()[:8])
	admin := pgtest.Connect(t, dbURL)
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = admin.Exec(context.Background(), "DROP ROLE "+role)
	})
	for _, q := range append([]string{
		"CREATE ROLE %s LOGIN",
		"GRANT USAGE ON SCHEMA outboxd TO %s",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA outboxd TO %s",
		"GRANT USAGE ON ALL SEQUENCES IN SCHEMA outboxd TO %s",
	}, then...) {
		if _, err := admin.Exec(ctx, fmt.Sprintf(q, role)); err != nil {
			t.Fatal(err)
		}
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String(), role
}

// The purge's job outlasts its budget (half the interval): River's default
// job timeout, a minute, cut a longer interval's purge short. A purge cut
// short by a deadline is logged; one stopped with the dispatcher is not.
func TestPurgeTimeoutAndWhatIsLogged(t *testing.T) {
	t.Parallel()
	// The budget is half the interval the job names (this process's for a
	// job that names none), at most 50 minutes; the timeout outlasts it and
	// ends before River's rescue of running jobs (an hour) discards it.
	for _, c := range []struct {
		local, named time.Duration
		budget       time.Duration
	}{
		{time.Minute, 0, 30 * time.Second},
		{4 * time.Minute, 0, 2 * time.Minute},
		{time.Minute, 4 * time.Minute, 2 * time.Minute},
		{4 * time.Minute, time.Minute, 30 * time.Second},
		{2 * time.Hour, 0, 50 * time.Minute},
		{time.Minute, 24 * time.Hour, 50 * time.Minute},
	} {
		w := &maintenanceWorker{d: &Dispatcher{cfg: Config{Maintenance: Maintenance{Interval: c.local}}}}
		job := &river.Job[maintenanceArgs]{}
		if c.named > 0 {
			job.Args.Every = c.named.String()
		}
		budget, timeout := w.purgeBudget(job), w.Timeout(job)
		if budget != c.budget || timeout <= budget || timeout >= time.Hour {
			t.Errorf("%s here, %s named: budget %s (want %s), timeout %s (want past the budget, under an hour)", c.local, c.named, budget, c.budget, timeout)
		}
	}
	for _, c := range []struct {
		what   string
		ctx    func() (context.Context, context.CancelFunc)
		logged bool
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		}, true},
		{"stop", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, false},
	} {
		d, logs := purgeDispatcher(t, pgtest.Pool(t))
		ctx, cancel := c.ctx()
		err := (&maintenanceWorker{d: d}).Work(ctx, nil)
		cancel()
		if err == nil {
			t.Fatalf("%s: the purge succeeded", c.what)
		}
		if got := strings.Contains(logs.String(), "the purge failed"); got != c.logged {
			t.Errorf("%s: logged %v, want %v:\n%s", c.what, got, c.logged, logs.String())
		}
	}
}

// purgeDispatcher is a dispatcher on pool, not started, whose log the
// test reads: enough to run its purge.
func purgeDispatcher(t *testing.T, pool *pgxpool.Pool) (*Dispatcher, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	d, err := New(pool, &Config{Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Destinations: map[string]dispatch.Destination{"ok": dispatch.DestinationFunc(
			func(context.Context, dispatch.Message) dispatch.Result {
				return dispatch.Result{Outcome: dispatch.Delivered}
			})}})
	if err != nil {
		t.Fatal(err)
	}
	return d, logs
}
