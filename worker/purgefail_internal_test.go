package worker

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

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
	role := "outboxd_nodelete_" + strings.ToLower(rand.Text()[:8])
	admin := pgtest.Connect(t, dbURL)
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"GRANT USAGE ON SCHEMA outboxd TO " + role,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA outboxd TO " + role,
		"GRANT USAGE ON ALL SEQUENCES IN SCHEMA outboxd TO " + role,
		"REVOKE DELETE ON outboxd.inbox_failures FROM " + role,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = admin.Exec(context.Background(), "DROP ROLE "+role)
	})
	if _, err := admin.Exec(ctx, `INSERT INTO outboxd.inbox_failures (source, event_id, kind, reason, status_code, last_at)
		VALUES ('s', 'old', 'failed', 'x', 503, now() - interval '30 days')`); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(dbURL)
	u.User = url.User(role)
	logs := &syncbuf.Buffer{}
	d, err := New(pgtest.Connect(t, u.String()), &Config{Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Destinations: map[string]dispatch.Destination{"ok": dispatch.DestinationFunc(
			func(context.Context, dispatch.Message) dispatch.Result {
				return dispatch.Result{Outcome: dispatch.Delivered}
			})}})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&maintenanceWorker{d: d}).Work(ctx, nil); err == nil {
		t.Fatal("the purge succeeded without DELETE on inbox_failures")
	}
	if text := logs.String(); !strings.Contains(text, "the purge failed; the role lacks a privilege") ||
		!strings.Contains(text, "Roles and grants") || !strings.Contains(text, "inbox_failures") {
		t.Fatalf("the failed purge's log:\n%s", text)
	}
}

// The purge's job outlasts its budget (half the interval): River's default
// job timeout, a minute, cut a longer interval's purge short. A purge cut
// short by a deadline is logged; one stopped with the dispatcher is not.
func TestPurgeTimeoutAndWhatIsLogged(t *testing.T) {
	t.Parallel()
	for _, every := range []time.Duration{time.Minute, 4 * time.Minute, 2 * time.Hour} {
		w := &maintenanceWorker{d: &Dispatcher{cfg: Config{Maintenance: Maintenance{Interval: every}}}}
		if got := w.Timeout(nil); got <= every/2 {
			t.Errorf("interval %s: the job's timeout %s does not outlast the purge's budget %s", every, got, every/2)
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
		logs := &syncbuf.Buffer{}
		d, err := New(pgtest.Pool(t), &Config{Logger: slog.New(slog.NewTextHandler(logs, nil)),
			Destinations: map[string]dispatch.Destination{"ok": dispatch.DestinationFunc(
				func(context.Context, dispatch.Message) dispatch.Result {
					return dispatch.Result{Outcome: dispatch.Delivered}
				})}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := c.ctx()
		err = (&maintenanceWorker{d: d}).Work(ctx, nil)
		cancel()
		if err == nil {
			t.Fatalf("%s: the purge succeeded", c.what)
		}
		if got := strings.Contains(logs.String(), "the purge failed"); got != c.logged {
			t.Errorf("%s: logged %v, want %v:\n%s", c.what, got, c.logged, logs.String())
		}
	}
}
