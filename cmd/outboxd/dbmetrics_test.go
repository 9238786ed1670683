package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/outbox"
)

// scrapeAllowance is what a scrape may take beyond metricsDBTimeout for
// the rest of its work (Go and process metrics, HTTP) on a loaded two-core
// machine.
const scrapeAllowance = time.Second

// gauges gathers reg into "name{destination}" -> value.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf("{%s}", l.GetValue())
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

// The database-backed gauges: a destination whose backlog empties reads 0
// instead of vanishing; dead letters, pauses and live dispatchers are
// counted per destination; configured destinations show from the start.
func TestDatabaseGaugesReadZeroWhenEmptied(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	reg.MustRegister(newDBCollector(b.pool, "outboxd", []string{"email-api"}, metricsDBTimeout, testRateLog(t)))

	g := gauges(t, reg)
	if g["outboxd_database_up"] != 1 || g["outboxd_pending_messages{email-api}"] != 0 {
		t.Fatalf("before any message: %v", g)
	}
	if _, ok := g["outboxd_pending_messages{email-api}"]; !ok {
		t.Fatalf("a configured destination is missing before its first message: %v", g)
	}
	for i := range 3 {
		if _, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "crm", Payload: fmt.Appendf(nil, `{"i":%d}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET created_at = now() - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.outbox_destinations (name, paused, reason, paused_at) VALUES ('gone-api', true, 'HTTP 410', now())`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.outbox_dispatchers (id, destinations, alive_until) VALUES ('d1', '{crm,email-api}', now() + interval '1 hour'), ('d2', '{crm}', now() + interval '1 hour'), ('gone', '{crm}', now() - interval '1 second')`); err != nil {
		t.Fatal(err)
	}
	g = gauges(t, reg)
	if g["outboxd_pending_messages{crm}"] != 3 || g["outboxd_oldest_pending_age_seconds{crm}"] < 3600 ||
		g["outboxd_destination_paused{gone-api}"] != 1 || g["outboxd_destination_paused{crm}"] != 0 ||
		g["outboxd_live_dispatchers{crm}"] != 2 || g["outboxd_live_dispatchers{email-api}"] != 1 {
		t.Fatalf("with a backlog: %v", g)
	}

	// Two delivered, one dead; the dispatchers go; the pause is resumed.
	if _, err := b.pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = CASE WHEN convert_from(payload, 'UTF8') = '{"i":0}' THEN 'dead' ELSE 'delivered' END,
delivered_at = CASE WHEN convert_from(payload, 'UTF8') = '{"i":0}' THEN NULL ELSE now() END`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `DELETE FROM outboxd.outbox_dispatchers; UPDATE outboxd.outbox_destinations SET paused = false`); err != nil {
		t.Fatal(err)
	}
	g = gauges(t, reg)
	if v, ok := g["outboxd_pending_messages{crm}"]; !ok || v != 0 || g["outboxd_oldest_pending_age_seconds{crm}"] != 0 ||
		g["outboxd_dead_messages{crm}"] != 1 || g["outboxd_destination_paused{gone-api}"] != 0 || g["outboxd_live_dispatchers{crm}"] != 0 {
		t.Fatalf("after the backlog emptied: %v", g)
	}
	// Purged too: nothing left of crm in the database, and still 0.
	if _, err := b.pool.Exec(ctx, `DELETE FROM outboxd.outbox_messages`); err != nil {
		t.Fatal(err)
	}
	g = gauges(t, reg)
	if v, ok := g["outboxd_dead_messages{crm}"]; !ok || v != 0 {
		t.Fatalf("after the purge: %v", g)
	}
}

// /metrics answers 200 while PostgreSQL is unreachable, within
// metricsDBTimeout (plus scrapeAllowance for the rest of the scrape), with
// outboxd_database_up 0 and the last values of the database-backed
// gauges: when the network to it hangs, and when the server is down.
func TestMetricsWhileDatabaseIsGone(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	direct := cluster.URL(t)
	proxy := newFreezer(t, hostOf(t, direct))
	pool := pgtest.Connect(t, direct)
	ctx := context.Background()
	ob, _ := outbox.New(nil)
	if _, err := ob.Enqueue(ctx, pool, outbox.Message{Destination: "crm", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'dead';
INSERT INTO outboxd.outbox_destinations (name, paused, reason, paused_at) VALUES ('gone-api', true, 'HTTP 410', now())`); err != nil {
		t.Fatal(err)
	}
	s := sink.Start()
	t.Cleanup(s.Close)
	d := startDaemon(t, serveConfig(t, proxy.via(t, direct), s.URL()))
	scrape := func() (int, string, time.Duration) {
		start := time.Now()
		resp, err := http.Get("http://" + d.listen + "/metrics")
		if err != nil {
			return 0, err.Error(), time.Since(start)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), time.Since(start)
	}
	kept := []string{`outboxd_dead_messages{destination="crm"} 1`, `outboxd_destination_paused{destination="gone-api"} 1`,
		`outboxd_pending_messages{destination="sink"} 0`}
	waitUp := func(what string) {
		waitUntil(t, 30*time.Second, what, func() bool {
			code, body, _ := scrape()
			return code == 200 && strings.Contains(body, "outboxd_database_up 1") && strings.Contains(body, kept[0])
		})
	}
	checkDown := func(how string) {
		t.Helper()
		code, body, took := scrape()
		if code != 200 || !strings.Contains(body, "outboxd_database_up 0") {
			t.Fatalf("%s: /metrics %d, want 200 with outboxd_database_up 0:\n%s", how, code, body)
		}
		for _, want := range append(kept, "outboxd_build_info", "go_goroutines") {
			if !strings.Contains(body, want) {
				t.Errorf("%s: /metrics lost %s", how, want)
			}
		}
		if took > metricsDBTimeout+scrapeAllowance {
			t.Fatalf("%s: the scrape took %s; metricsDBTimeout is %s", how, took, metricsDBTimeout)
		}
		t.Logf("%s: /metrics answered in %s", how, took.Round(time.Millisecond))
	}
	// Started (serve exits if the database goes while River starts).
	waitUntil(t, 30*time.Second, "/readyz", func() bool {
		resp, err := http.Get("http://" + d.listen + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	waitUp("outboxd_database_up 1 with the dead letter")

	proxy.freeze()
	checkDown("the network to the database hangs")
	proxy.thaw()
	waitUp("the database back after the hang")

	cluster.Stop()
	checkDown("the database server is down")
	cluster.Start(t)
	waitUp("the database back after a restart")
}

// hostOf returns a URL's host:port.
func hostOf(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// While the database does not answer (here: a lock holds the query),
// concurrent scrapes share one query rather than piling one each onto the
// database, each answers within metricsDBTimeout with the last values and
// outboxd_database_up 0, and the next read after the lock goes recovers.
func TestDatabaseGaugesOneQueryAtATime(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	reg.MustRegister(newDBCollector(b.pool, "outboxd", []string{"crm"}, metricsDBTimeout, testRateLog(t)))
	if _, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "crm", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if g := gauges(t, reg); g["outboxd_database_up"] != 1 || g["outboxd_pending_messages{crm}"] != 1 {
		t.Fatalf("before the lock: %v", g)
	}
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE outboxd.outbox_destinations IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	const scrapes = 5
	results := make(chan map[string]float64, scrapes)
	for range scrapes {
		go func() {
			families, err := reg.Gather()
			if err != nil {
				t.Error(err)
			}
			g := map[string]float64{}
			for _, f := range families {
				for _, m := range f.GetMetric() {
					key := f.GetName()
					for _, l := range m.GetLabel() {
						key += "{" + l.GetValue() + "}"
					}
					g[key] = m.GetGauge().GetValue()
				}
			}
			results <- g
		}()
	}
	// Watch the database's side until every scrape has answered.
	most := 0
	for done := 0; done < scrapes; {
		select {
		case g := <-results:
			done++
			if g["outboxd_database_up"] != 0 || g["outboxd_pending_messages{crm}"] != 1 {
				t.Errorf("a scrape while the query waits: %v", g)
			}
		default:
			var waiting int
			if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%outbox_dispatchers%'`).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			most = max(most, waiting)
			time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an outcome
		}
	}
	if most != 1 {
		t.Fatalf("%d collection queries waited at once for %d concurrent scrapes, want 1", most, scrapes)
	}
	// The driver cancels the query it gave up on: no backend is left
	// waiting behind the lock, one more at every scrape.
	waitUntil(t, 10*time.Second, "no collection query left waiting", func() bool {
		var waiting int
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%outbox_dispatchers%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		return waiting == 0
	})
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "outboxd_database_up 1 after the lock", func() bool {
		return gauges(t, reg)["outboxd_database_up"] == 1
	})
}
