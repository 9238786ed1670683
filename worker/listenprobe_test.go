package worker_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/internal/syncbuf"
	"github.com/outboxd/outboxd/worker"
)

// A listening connection probes itself with a NOTIFY sent from the pool,
// as producers' commits are announced, and a working one gets it: no
// warning.
func TestListeningConnectionGetsItsProbe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	logs := &syncbuf.Buffer{}
	var probes <-chan bool
	reg, m := newMetrics(t)
	b.startWith(t, b.config(t, func(c *worker.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)); c.Metrics = m }),
		func(d *worker.Dispatcher) { probes = worker.ProbeListener(d, "", 50*time.Millisecond) })
	for i := range 3 { // the first probe, and those made every 50 ms after it
		select {
		case arrived := <-probes:
			if !arrived {
				t.Fatalf("probe %d did not arrive; logs:\n%s", i+1, logs.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("probe %d was not sent or answered within 30 s", i+1)
		}
	}
	if v := probeFailing(t, reg); v != 0 {
		t.Fatalf("outboxd_listen_probe_failing %v, want 0", v)
	}
}

// probeFailing reads outboxd_listen_probe_failing.
func probeFailing(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "outboxd_listen_probe_failing" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("outboxd_listen_probe_failing is not registered")
	return -1
}

// A pool whose connections have a notification handler of the
// application's (pgconn's OnNotification) is refused: pgx gives that
// handler every notification and WaitForNotification returns a nil one, so
// the dispatcher's listener (made from the pool's settings) and River's (on
// a connection of the pool) crashed the process at their first wake-up (a
// review's).
func TestANotificationHandlerOnThePoolIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.poolWith(t, func(c *pgxpool.Config) {
		c.ConnConfig.OnNotification = func(*pgconn.PgConn, *pgconn.Notification) {}
	})
	if _, err := worker.New(pool, b.config(t, nil)); err == nil || !strings.Contains(err.Error(), "OnNotification") {
		t.Fatalf("New: %v, want a refusal naming OnNotification", err)
	}
}

// Through PgBouncer's transaction pooling the LISTEN lands on a server
// connection that forwards nothing afterwards: every wake-up was lost and
// nothing said so (an operator's trial). The probe, sent here where the
// listener does not listen, stands for that: after listenProbeWait (10 s,
// docs/operations.md) the dispatcher warns, naming the pooler and the
// sweep that delivers meanwhile, and again at each probe after it.
func TestListeningConnectionWarnsWhenItsProbeNeverArrives(t *testing.T) {
	t.Parallel()
	b := setup(t)
	logs := &syncbuf.Buffer{}
	var probes <-chan bool
	started := time.Now()
	reg, m := newMetrics(t)
	b.startWith(t, b.config(t, func(c *worker.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)); c.Metrics = m }),
		func(d *worker.Dispatcher) {
			probes = worker.ProbeListener(d, "outboxd_listen_probe_elsewhere", 50*time.Millisecond)
		})
	for i := range 2 {
		select {
		case arrived := <-probes:
			if arrived {
				t.Fatal("a probe sent where nobody listens arrived")
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("no warning %d within 60 s", i+1)
		}
		if waited := time.Since(started); waited < time.Duration(i+1)*10*time.Second {
			t.Fatalf("warning %d came after %s, before %d times the 10 s bound", i+1, waited, i+1)
		}
		if v := probeFailing(t, reg); v != 1 {
			t.Fatalf("outboxd_listen_probe_failing %v after warning %d, want 1", v, i+1)
		}
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "did not reach this dispatcher's listening connection") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d warnings, want 2; logs:\n%s", len(lines), logs.String())
	}
	for _, want := range []string{"level=WARN", "transaction mode (PgBouncer)", "waited=10s", "sweep_interval=100ms", "probed_again_in=50ms"} {
		if !strings.Contains(lines[0], want) {
			t.Fatalf("want %s in the warning: %s", want, lines[0])
		}
	}
}

// A probe that cannot be sent (here: a channel name the server refuses;
// in life, a pool busy at start, the database away, pg_notify revoked) is
// tried again a second after each failure: behind a transaction pooler
// the listening connection never reconnects, so its first probe may be
// its only one. Tries that keep failing for listenProbeWait (10 s) are
// warned about: the check cannot be made.
func TestAProbeThatCannotBeSentIsSentAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	logs := &syncbuf.Buffer{}
	b.startWith(t, b.config(t, func(c *worker.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}), func(d *worker.Dispatcher) { worker.ProbeListener(d, strings.Repeat("p", 70), 0) })
	const warning = "probe cannot be sent, so whether notifications reach it is unchecked"
	waitFor(t, 60*time.Second, "the warning that the probe cannot be sent", func() bool { return strings.Contains(logs.String(), warning) })
	var tries []time.Time
	for _, l := range strings.Split(logs.String(), "\n") {
		var e struct {
			Time  time.Time
			Msg   string
			Error string
		}
		if json.Unmarshal([]byte(l), &e) != nil || !strings.Contains(e.Msg, "probe c") {
			continue
		}
		if !strings.Contains(e.Error, "channel name too long") {
			t.Fatalf("a try's line does not say why: %s", l)
		}
		tries = append(tries, e.Time)
		if strings.Contains(e.Msg, warning) {
			break
		}
	}
	// The clock starts before the first try; its line comes after it.
	if len(tries) < 2 || tries[len(tries)-1].Sub(tries[0]) < 9500*time.Millisecond {
		t.Fatalf("warned after %d tries over %s, want tries over at least 10 s:\n%s", len(tries), tries[len(tries)-1].Sub(tries[0]), logs.String())
	}
	for i := 1; i < len(tries); i++ {
		if gap := tries[i].Sub(tries[i-1]); gap < time.Second {
			t.Fatalf("tries %d and %d %s apart, want a second at least", i, i+1, gap)
		}
	}
}

// The listening connection is made with the pool's BeforeConnect hook, as
// the pool's own are: a hook that sets a rotating password (an IAM token)
// left it unable to log in (a review's). Here the hook names the
// connections; the listener's session carries the name.
func TestTheListenerRunsThePoolsBeforeConnect(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.pool = b.poolWith(t, func(c *pgxpool.Config) {
		c.BeforeConnect = func(_ context.Context, c *pgx.ConnConfig) error {
			c.RuntimeParams["application_name"] = "outboxd-hooked"
			return nil
		}
	})
	b.start(t, b.config(t, nil))
	waitFor(t, 30*time.Second, "the listener's session named by the hook", func() bool {
		var n int
		if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'outboxd-hooked'
			  AND query LIKE '%pg_try_advisory_lock(hashtextextended(''outboxd dispatcher%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
}

// poolWith opens another pool on b's database, its config changed by
// mutate, closed when t ends.
func (b bundle) poolWith(t *testing.T, mutate func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(b.pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	mutate(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
