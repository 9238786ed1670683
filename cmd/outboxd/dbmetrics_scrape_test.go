package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/internal/pgtest"

	"github.com/outboxd/outboxd/internal/syncbuf"
)

// testRateLog is a rateLog that writes to the test's log.
func testRateLog(t *testing.T) *rateLog {
	return newRateLog(slog.New(slog.NewTextHandler(t.Output(), nil)), scrapeLogEvery)
}

// The numbers the docs promise about /metrics.
func TestMetricsNumbersDocumented(t *testing.T) {
	t.Parallel()
	if metricsDBTimeout != 2*time.Second {
		t.Errorf("metricsDBTimeout is %s; docs/operations.md, configuration.md, design.md and alerts.yml say 2 s", metricsDBTimeout)
	}
	if forgetIdleAfter != time.Hour {
		t.Errorf("forgetIdleAfter is %s; docs/operations.md says an hour", forgetIdleAfter)
	}
	if purgeSlack != 250*time.Millisecond {
		t.Errorf("purgeSlack is %s; CHANGELOG.md says the last purge's read gives up 250 ms before the scrape's budget ends", purgeSlack)
	}
	if lastPurgeWait != 200*time.Millisecond {
		t.Errorf("lastPurgeWait is %s; CHANGELOG.md says the last purge's read waits at most 200 ms", lastPurgeWait)
	}
	if scrapeLogEvery != time.Minute {
		t.Errorf("scrapeLogEvery is %s; docs/operations.md says once a minute", scrapeLogEvery)
	}
	for file, wants := range map[string][]string{
		"../../docs/operations.md":           {"**2 s** (`metricsDBTimeout`)", "all zeros for an hour", "once a minute"},
		"../../docs/configuration.md":        {"more than 2 s"},
		"../../docs/design.md":               {"200 within 2 s (`metricsDBTimeout`)"},
		"../../deploy/prometheus/alerts.yml": {"within 2 s (metricsDBTimeout)"},
	} {
		raw := readFile(t, file)
		for _, want := range wants {
			if !strings.Contains(raw, want) {
				t.Errorf("%s does not say %q", file, want)
			}
		}
	}
}

// The database-backed gauges read through a connection of their own: a
// dispatcher holding every connection of its pool does not make the
// database look down.
func TestDatabaseGaugesOwnConnection(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=2")
	ctx := context.Background()
	held := make([]interface{ Release() }, 0, 2)
	for range 2 {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	reg := prometheus.NewRegistry()
	_, own, err := registerServeMetrics(reg, pool, "outboxd", []string{"crm"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	before := time.Now()
	g := gauges(t, reg)
	if g["outboxd_database_up"] != 1 {
		t.Fatalf("with the serve pool's connections all taken: outboxd_database_up %v, want 1", g["outboxd_database_up"])
	}
	if at := g["outboxd_database_last_success_timestamp_seconds"]; at < float64(before.Unix()) || at > float64(time.Now().Unix()+1) {
		t.Fatalf("outboxd_database_last_success_timestamp_seconds %v, want the time of this scrape (%d)", at, before.Unix())
	}
}

// When the collection ends as the timeout fires, the scrape reports the
// collection's answer.
func TestAwaitCollectionPrefersTheAnswer(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	close(done)
	for range 1000 {
		expired := make(chan time.Time, 1)
		expired <- time.Now()
		if !awaitCollection(done, expired) {
			t.Fatal("the collection had ended, yet the scrape gave up")
		}
	}
}

// A scrape that gives up on a collection still running answers
// outboxd_database_up 0, and leaves the shared state alone: the collection
// decides it when it ends, and a concurrent scrape that saw it end must
// not read a 0 written by the one that gave up.
func TestTimedOutScrapeKeepsSharedState(t *testing.T) {
	t.Parallel()
	running := make(chan struct{})
	defer close(running)
	c := &dbCollector{timeout: time.Millisecond, logs: testRateLog(t), running: running, up: true,
		last: map[string]destStats{"crm": {pending: 2}}, lastSuccess: time.Now()}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	g := gauges(t, reg)
	if g["outboxd_database_up"] != 0 || g["outboxd_pending_messages{crm}"] != 2 {
		t.Fatalf("a scrape that gave up: %v", g)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.up {
		t.Fatal("the scrape that gave up wrote up=false into the collector's shared state")
	}
}

// A destination name that is not UTF-8 cannot be a label value: its
// gauges are left out and logged, the others and the scrape go on.
// PostgreSQL's UTF8 encoding refuses such a name, so the collector is fed
// one directly (a SQL_ASCII database would store it).
func TestDatabaseGaugesSkipInvalidNames(t *testing.T) {
	t.Parallel()
	var logs syncbuf.Buffer
	c := &dbCollector{logs: newRateLog(slog.New(slog.NewTextHandler(&logs, nil)), scrapeLogEvery)}
	ch := make(chan prometheus.Metric, 100)
	c.emit(ch, map[string]destStats{"crm": {pending: 2}, "bad\xff": {pending: 1}}, true, time.Now())
	close(ch)
	var descs []string
	for m := range ch {
		descs = append(descs, m.Desc().String())
	}
	// up, the timestamp and crm's six.
	if len(descs) != 8 {
		t.Fatalf("%d series, want 8: %v", len(descs), descs)
	}
	if !strings.Contains(logs.String(), `destination="\"bad\\xff\""`) {
		t.Fatalf("the invalid name is not logged: %s", logs.String())
	}
}

// promhttp's errors (a collector that failed; the scrape goes on) reach
// the log, once per scrapeLogEvery.
func TestMetricsErrorsLogged(t *testing.T) {
	t.Parallel()
	var logs syncbuf.Buffer
	reg := prometheus.NewRegistry()
	reg.MustRegister(failingCollector{}, newBuildInfo())
	srv := httptest.NewServer(opsHandler(nil, nil, reg, slog.New(slog.NewTextHandler(&logs, nil))))
	defer srv.Close()
	for range 3 {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/metrics %d", resp.StatusCode)
		}
	}
	if n := strings.Count(logs.String(), "collector broke"); n != 1 {
		t.Fatalf("%d lines about the failing collector in 3 scrapes, want 1:\n%s", n, logs.String())
	}
}

var failingDesc = prometheus.NewDesc("outboxd_test_failing", "A collector that fails.", nil, nil)

type failingCollector struct{}

func (failingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- failingDesc }
func (failingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(failingDesc, errors.New("collector broke"))
}

// rateLog lets one line per key through per interval and counts the rest.
func TestRateLogHoldsBack(t *testing.T) {
	t.Parallel()
	var logs syncbuf.Buffer
	l := newRateLog(slog.New(slog.NewTextHandler(&logs, nil)), time.Minute)
	now := time.Unix(1_700_000_000, 0)
	l.now = func() time.Time { return now }
	for range 3 {
		l.warn("k", "problem")
	}
	now = now.Add(time.Minute)
	l.warn("k", "problem")
	out := logs.String()
	if strings.Count(out, "problem") != 2 || !strings.Contains(out, "held_back=2") {
		t.Fatalf("want 2 lines, the second with held_back=2:\n%s", out)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
