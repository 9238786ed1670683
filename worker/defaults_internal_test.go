package worker

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
)

// The defaults and bounds docs/configuration.md and docs/design.md name,
// each checked against what the dispatcher applies: a changed constant
// fails here and sends its author to the docs.
func TestDocumentedDefaults(t *testing.T) {
	t.Parallel()
	c := (&Config{}).withDefaults()
	for _, tc := range []struct {
		doc       string
		got, want any
	}{
		{"dispatcher.batch_size 200", c.BatchSize, 200},
		{"dispatcher.batch_bytes 1 MiB", c.BatchBytes, int64(1 << 20)},
		{"dispatcher.per_key_batch 10", c.PerKeyBatch, 10},
		{"dispatcher.lease_ttl 10s", c.LeaseTTL, 10 * time.Second},
		{"dispatcher.acquire_interval 1s", c.AcquireInterval, time.Second},
		{"dispatcher.sweep_interval 1s", c.SweepInterval, time.Second},
		{"retry.max_attempts 25", c.Retry.MaxAttempts, 25},
		{"retry.max_age 72h", c.Retry.MaxAge, 72 * time.Hour},
		{"retry.base 1s", c.Retry.Base, time.Second},
		{"retry.max 1h", c.Retry.Max, time.Hour},
		{"maintenance.interval 1m", c.Maintenance.Interval, time.Minute},
		{"maintenance.delivered_retention 168h", c.Maintenance.DeliveredRetention, 168 * time.Hour},
		{"maintenance.failure_retention 168h", c.Maintenance.FailureRetention, 168 * time.Hour},
		{"maintenance.batch_size 1000", c.Maintenance.BatchSize, 1000},
		{"maintenance.duty 0.25", c.Maintenance.Duty, 0.25},
		{"stop bound: shutdown_timeout + 5 s (StuckGrace)", StuckGrace, 5 * time.Second},
		{"unserved destinations checked every 10 acquire_intervals", unservedEvery, 10},
		{"one log line per kind per 10 s", logEvery, 10 * time.Second},
		{"lease_ttl at least 500ms", MinLeaseTTL, 500 * time.Millisecond},
		{"intervals at least 10ms", MinInterval, 10 * time.Millisecond},
		{"a hanging request's lane moves on after 1 s (design.md, stragglers)", stragglerAfter, time.Second},
		{"at most 4 stragglers per lane", maxStragglers, 4},
		{"lane management: a pool of at most 2 connections (doc.go, CHANGELOG)", leasesConns, 2},
		{"a stop waits at most 1 s for lane management's connections to close", leasesCloseWait, time.Second},
		{"the listener's reconnect wait resets after a session that listened 5 s (design.md, CHANGELOG)", listenSteady, 5 * time.Second},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: the code has %v", tc.doc, tc.got)
		}
	}
}

// Lane management's pool has the dispatcher's pool's settings (a password
// from a BeforeConnect, the session's name) but at most leasesConns
// connections, and opens none before a statement needs it.
func TestLeasesPoolKeepsThePoolsSettings(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig("postgres://u@127.0.0.1:1/db?application_name=ours&pool_max_conns=40&pool_min_conns=0")
	if err != nil {
		t.Fatal(err)
	}
	called := false
	cfg.BeforeConnect = func(context.Context, *pgx.ConnConfig) error { called = true; return nil }
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	leases := leasesPool(pool)
	defer leases.Close()
	got := leases.Config()
	if got.MaxConns != leasesConns || got.MinConns != 0 || got.MinIdleConns != 0 {
		t.Errorf("max %d, min %d, min idle %d; want %d, 0, 0", got.MaxConns, got.MinConns, got.MinIdleConns, leasesConns)
	}
	if got.ConnConfig.RuntimeParams["application_name"] != "ours" || got.ConnConfig.Host != "127.0.0.1" || got.BeforeConnect == nil {
		t.Errorf("the pool's settings were not kept: %+v", got.ConnConfig.RuntimeParams)
	}
	if called || leases.Stat().TotalConns() != 0 {
		t.Errorf("a connection was opened before any statement")
	}
}

// The least values are accepted, one below them refused; a purge duty
// outside (0, 1] is refused as the configuration file's is, not replaced
// by the default without a word.
func TestConfigBounds(t *testing.T) {
	t.Parallel()
	base := func() Config {
		send := func(context.Context, dispatch.Message) dispatch.Result { return dispatch.Result{} }
		return (&Config{Destinations: map[string]dispatch.Destination{"d": dispatch.DestinationFunc(send)}, ID: "x"}).withDefaults()
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		error string // "" when accepted
	}{
		{"lease_ttl 500ms", func(c *Config) { c.LeaseTTL, c.AcquireInterval = MinLeaseTTL, MinInterval }, ""},
		{"lease_ttl 499ms", func(c *Config) { c.LeaseTTL, c.AcquireInterval = MinLeaseTTL-time.Millisecond, MinInterval }, "below 500ms"},
		{"sweep 10ms", func(c *Config) { c.SweepInterval = MinInterval }, ""},
		{"maintenance 10ms", func(c *Config) { c.Maintenance.Interval = MinInterval }, ""},
		{"duty 1", func(c *Config) { c.Maintenance.Duty = 1 }, ""},
		{"per-key batch of int4's most", func(c *Config) { c.PerKeyBatch = MaxCount }, ""},
		{"per-key batch past int4", func(c *Config) { c.PerKeyBatch = MaxCount + 1 }, "must be at most 2147483647"},
		{"maintenance batch past int4", func(c *Config) { c.Maintenance.BatchSize = MaxCount + 1 }, "must be at most 2147483647"},
		{"duty 1.5", func(c *Config) { c.Maintenance.Duty = 1.5 }, "Maintenance.Duty (1.5) must be between 0 and 1"},
		{"duty -0.5", func(c *Config) { c.Maintenance.Duty = -0.5 }, "Maintenance.Duty (-0.5) must be between 0 and 1"},
	} {
		c := base()
		tc.edit(&c)
		err := c.validate()
		switch {
		case tc.error == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.error != "" && (err == nil || !strings.Contains(err.Error(), tc.error)):
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.error)
		}
	}
}

// RetryPolicy.Backoff on a policy with zero fields applies the documented
// defaults (1 s, 1 h), as New does: a zero policy returned 0 for every
// attempt, and ignored a Retry-After (a library trial's).
func TestBackoffOfAZeroPolicy(t *testing.T) {
	t.Parallel()
	var p RetryPolicy
	if d := p.Backoff(1, 0); d < 500*time.Millisecond || d > time.Second {
		t.Errorf("first backoff %s, want within [0.5 s, 1 s]", d)
	}
	if d := p.Backoff(40, 0); d < 30*time.Minute || d > time.Hour {
		t.Errorf("40th backoff %s, want within [30 min, 1 h]", d)
	}
	if d := p.Backoff(1, 2*time.Hour); d != time.Hour {
		t.Errorf("Retry-After of 2 h: %s, want the default Max, 1 h", d)
	}
}

// A recording in a stop has until the stop's deadline, and at least 5 s
// within the stop's bound (docs/configuration.md, CHANGELOG): what
// recordBudget gives for a deadline past and short of 5 s.
func TestRecordBudgetInAStop(t *testing.T) {
	t.Parallel()
	d := &Dispatcher{}
	for _, tc := range []struct {
		deadline, want time.Duration
	}{{30 * time.Second, 30 * time.Second}, {2 * time.Second, 5 * time.Second}, {0, 5 * time.Second}} {
		d.windDownBy.Store(time.Now().Add(tc.deadline + StuckGrace).UnixNano())
		if got := d.recordBudget(); got < tc.want-time.Second || got > tc.want {
			t.Errorf("a stop with a %s deadline gives a recording %s, want %s", tc.deadline, got, tc.want)
		}
	}
}

// River keeps a completed purge run at least until the next one is due
// (outboxd serve's outboxd_maintenance_last_success_timestamp_seconds reads
// it): an hour, which docs/operations.md states, or two intervals.
func TestCompletedRunsKeptPastTheNextPurge(t *testing.T) {
	for _, c := range []struct{ interval, want time.Duration }{
		{time.Minute, time.Hour}, {30 * time.Minute, time.Hour}, {45 * time.Minute, 90 * time.Minute}, {24 * time.Hour, 48 * time.Hour},
	} {
		if got := completedRetention(c.interval); got != c.want || got <= c.interval {
			t.Errorf("interval %s: completed jobs kept %s, want %s (past the next run)", c.interval, got, c.want)
		}
	}
}

// The dispatcher's River client reindexes nothing: REINDEX needs the
// indexes' owner, which the runtime role of docs/operations.md ("Roles and
// grants") is not. A nil list would be River's default, every river_job
// index.
func TestRiverReindexesNothing(t *testing.T) {
	if names := (&Dispatcher{log: slog.New(slog.DiscardHandler)}).riverConfig().ReindexerIndexNames; names == nil || len(names) != 0 {
		t.Fatalf("ReindexerIndexNames %v; want an empty list, not nil", names)
	}
}

// A refusal of an operation not tried again ages out after three of its
// intervals (dbHealth.refusedOps): these are the loops' own, as
// docs/operations.md lists them for outboxd_database_refused.
func TestRefusalsAgeOutAfterTheOperationsOwnIntervals(t *testing.T) {
	d := &Dispatcher{cfg: Config{AcquireInterval: 2 * time.Second, LeaseTTL: 10 * time.Second, SweepInterval: 3 * time.Second}}
	for op, want := range map[healthOp]time.Duration{
		opBalance:   2 * time.Second,  // manageLanes' ticker
		opStopRenew: 2 * time.Second,  // releaseAll's
		opUnserved:  12 * time.Second, // watchUnserved, refused: an acquire interval, and a heartbeat's wait
		opIdleProbe: 3 * time.Second,  // probeIdleLanes
		opClaim:     5 * time.Second,  // the runner's backoff, at most
		opRecord:    5 * time.Second,
		opListen:    5 * time.Second,
	} {
		if got := d.tryEvery(op); got != want {
			t.Errorf("tryEvery(%s) = %s, want %s", op.label, got, want)
		}
	}
}
