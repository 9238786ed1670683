package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/pendingsql"
)

// metricsDBTimeout bounds how long a /metrics scrape waits for the
// database. Past it, or when the database fails, the scrape still answers
// 200: with the values of the last collection that worked and
// outboxd_database_up 0. docs/operations.md promises this number.
const metricsDBTimeout = 2 * time.Second

// destinationStatsSQL reads, per destination, what /metrics shows from the
// database. The names are the configured destinations ($2), those with
// pending or dead messages, those ever paused and those a live dispatcher
// serves: a destination whose backlog empties stays in the list, at 0.
// Pending messages are read through the lane indexes within a budget of $1
// rows for the whole scrape (pendingsql.Budget), so that a scrape costs the
// same behind a backlog of a million, whatever the number of destinations. The leading comment names the query in
// pg_stat_activity, which keeps only the start of a long query's text.
const destinationStatsSQL = `/* outboxd serve: /metrics, outbox_dispatchers and per-destination gauges */
WITH RECURSIVE ` + pendingsql.Destinations + `, pending AS (
    SELECT pd.destination, s.n, extract(epoch FROM now() - s.oldest) AS age, s.capped
    FROM pending_destinations pd CROSS JOIN LATERAL ` + pendingsql.Stats + ` s
), dead AS (
    SELECT destination, count(*) AS n
    FROM {{schema}}.outbox_messages WHERE status = 'dead' GROUP BY destination
), live AS (
    SELECT unnest(destinations) AS destination, count(*) AS n
    FROM {{schema}}.outbox_dispatchers WHERE alive_until > now() GROUP BY 1
), names AS (
    SELECT unnest($2::text[]) AS destination
    UNION SELECT destination FROM pending
    UNION SELECT destination FROM dead
    UNION SELECT destination FROM live
    UNION SELECT name FROM {{schema}}.outbox_destinations
)
SELECT n.destination, coalesce(p.n, 0), coalesce(p.age, 0), coalesce(p.capped, false), coalesce(d.n, 0),
       coalesce(x.paused, false), coalesce(l.n, 0)
FROM names n
LEFT JOIN pending p USING (destination)
LEFT JOIN dead d USING (destination)
LEFT JOIN live l USING (destination)
LEFT JOIN {{schema}}.outbox_destinations x ON x.name = n.destination`

// lastPurgeSQL reads when the last purge run completed, whichever process
// ran it: River keeps a completed run's job an hour, or two maintenance
// intervals when longer (worker/river.go), so 0 means none in that time.
// Only the kind's index serves it: state is compared as text so that the
// index on state, whose completed jobs may be a busy application's inbox
// jobs in the same tables, is never read.
const lastPurgeSQL = `/* outboxd serve: /metrics, the last completed purge */
SELECT coalesce(extract(epoch FROM max(finalized_at)), 0)::float8
FROM {{schema}}.river_job
WHERE kind = 'outboxd_maintenance' AND state::text = 'completed'`

// destStats is one destination's row of destinationStatsSQL.
type destStats struct {
	pending, dead, live int64
	age                 float64
	paused, capped      bool
}

var (
	descPending = prometheus.NewDesc("outboxd_pending_messages",
		"Messages waiting for delivery (0 once the backlog empties).", []string{"destination"}, nil)
	descAge = prometheus.NewDesc("outboxd_oldest_pending_age_seconds",
		"Age of the oldest message waiting for delivery (0 without a backlog).", []string{"destination"}, nil)
	descCapped = prometheus.NewDesc("outboxd_pending_capped",
		"1 if the scrape's row budget cut a read of the destination's backlog short: outboxd_pending_messages is then a lower bound and outboxd_oldest_pending_age_seconds the oldest seen.", []string{"destination"}, nil)
	descDead = prometheus.NewDesc("outboxd_dead_messages",
		"Dead-lettered messages kept in the database (requeue or purge them: outboxd outbox dead).", []string{"destination"}, nil)
	descPaused = prometheus.NewDesc("outboxd_destination_paused",
		"1 while the destination is paused after a 410 Gone (outboxd outbox resume NAME), else 0.", []string{"destination"}, nil)
	descLive = prometheus.NewDesc("outboxd_live_dispatchers",
		"Live outboxd dispatchers that serve the destination, from their heartbeats.", []string{"destination"}, nil)
	descUp = prometheus.NewDesc("outboxd_database_up",
		"1 if PostgreSQL answered the last metrics query within the timeout, else 0 (the database-backed gauges then keep their last values).", nil, nil)
	descLastPurge = prometheus.NewDesc("outboxd_maintenance_last_success_timestamp_seconds",
		"Unix time at which the last purge run completed, whichever process ran it (0: none kept; River keeps completed runs an hour, or two maintenance intervals when longer).", nil, nil)
	descLastSuccess = prometheus.NewDesc("outboxd_database_last_success_timestamp_seconds",
		"Unix time of the last metrics query PostgreSQL answered: the time of the values the database-backed gauges show.", nil, nil)
)

// dbCollector exports the database-backed gauges. A scrape waits at most
// timeout for a collection; one collection runs at a time, shared by
// concurrent scrapes, so a slow database is not queried once per scrape.
type dbCollector struct {
	pool       *pgxpool.Pool
	query      string
	purgeQuery string
	purgeWait  time.Duration // lastPurgeWait
	budget     int64         // rows of outbox_messages a collection may read for the backlog
	configured []string
	keep       map[string]bool // configured, as a set
	timeout    time.Duration
	logs       *rateLog
	now        func() time.Time

	mu          sync.Mutex
	last        map[string]destStats // nil until a collection succeeded
	lastPurge   float64              // lastPurgeSQL's, as last
	purgeRead   bool                 // lastPurge was read once
	zeroSince   map[string]time.Time // unconfigured names reading all zeros, since when
	up          bool
	lastSuccess time.Time
	running     chan struct{} // closed when the collection in flight ends
}

func newDBCollector(pool *pgxpool.Pool, schema string, configured []string, timeout time.Duration, logs *rateLog) *dbCollector {
	keep := map[string]bool{}
	for _, name := range configured {
		keep[name] = true
	}
	return &dbCollector{pool: pool, query: dbschema.Render(destinationStatsSQL, schema), purgeQuery: dbschema.Render(lastPurgeSQL, schema), purgeWait: lastPurgeWait, budget: pendingsql.Budget,
		configured: configured, keep: keep, timeout: timeout, logs: logs, now: time.Now,
		zeroSince: map[string]time.Time{}}
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPending, descAge, descCapped, descDead, descPaused, descLive, descUp, descLastSuccess, descLastPurge} {
		ch <- d
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	timer := time.NewTimer(c.timeout)
	answered := awaitCollection(c.refresh(), timer.C)
	timer.Stop()

	c.mu.Lock()
	last, purged, purgeRead, up, at := c.last, c.lastPurge, c.purgeRead, c.up, c.lastSuccess
	c.mu.Unlock()
	// A scrape that gave up says so in its own answer only: the
	// collection still running decides the shared state when it ends.
	c.emit(ch, last, up && answered, at)
	if purgeRead {
		// Absent until read: 0 says no run is kept, which a read never
		// made (a budget the destinations' read used up) would not know.
		ch <- prometheus.MustNewConstMetric(descLastPurge, prometheus.GaugeValue, purged)
	}
}

// awaitCollection reports whether the collection ended (done) before the
// timeout. When both are ready it is the collection's answer that counts.
func awaitCollection(done <-chan struct{}, timeout <-chan time.Time) bool {
	select {
	case <-done:
		return true
	case <-timeout:
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
}

// emit sends one scrape's series. A destination name that cannot be a
// label value (not UTF-8) is left out and logged instead of failing the
// scrape.
func (c *dbCollector) emit(ch chan<- prometheus.Metric, last map[string]destStats, up bool, at time.Time) {
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, boolGauge(up))
	if !at.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, float64(at.UnixNano())/1e9)
	}
	for _, name := range slices.Sorted(maps.Keys(last)) {
		s := last[name]
		var ms []prometheus.Metric
		for _, v := range []struct {
			d *prometheus.Desc
			v float64
		}{{descPending, float64(s.pending)}, {descAge, s.age}, {descCapped, boolGauge(s.capped)}, {descDead, float64(s.dead)},
			{descPaused, boolGauge(s.paused)}, {descLive, float64(s.live)}} {
			m, err := prometheus.NewConstMetric(v.d, prometheus.GaugeValue, v.v, name)
			if err != nil {
				c.logs.warn("destination label", "/metrics: a destination's name cannot be a label value; its gauges are left out",
					"destination", strconv.Quote(name), "error", err.Error())
				ms = nil
				break
			}
			ms = append(ms, m)
		}
		for _, m := range ms {
			ch <- m
		}
	}
}

// refresh starts a collection unless one is in flight, and returns a
// channel closed when it ends.
func (c *dbCollector) refresh() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running != nil {
		return c.running
	}
	done := make(chan struct{})
	c.running = done
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		now, purged, purgeErr, err := c.collect(ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.running = nil
		c.up = err == nil
		if err != nil {
			// A refused grant reads as an unreachable database to the
			// alerts (outboxd_database_up 0): say which (an operator's
			// trial found nothing logged).
			described := describeDBError(err)
			if errors.Is(err, context.DeadlineExceeded) {
				// Not a connection that failed: a lock or a slow read, or
				// a database that does not answer.
				described = fmt.Errorf("no answer within %s (a lock on outboxd's tables, a slow read, or the database not answering)", c.timeout)
			}
			c.logs.warn("read", "/metrics: the database gauges could not be read; they keep their last values and outboxd_database_up is 0",
				"error", described)
			return
		}
		c.lastSuccess = c.now()
		c.last = c.merge(now, c.lastSuccess)
		if purgeErr != nil {
			c.logs.warn("last purge", "/metrics: the last purge's time could not be read; outboxd_maintenance_last_success_timestamp_seconds keeps its last value",
				"error", purgeErr.Error())
			return
		}
		c.lastPurge, c.purgeRead = purged, true
	}()
	return done
}

// collect reads the destinations' gauges, then the last purge's time: a
// failure of that read (River's table refused to the role, or locked past
// lastPurgeWait) is purgeErr, and leaves the other gauges read. A commit
// failing after them does too: the scrape's deadline falling during the
// purge's read cancels the connection, but what was read stands (the
// transaction only reads).
func (c *dbCollector) collect(ctx context.Context) (out map[string]destStats, purged float64, purgeErr, err error) {
	out = map[string]destStats{}
	read := false
	defer func() {
		if read {
			err = nil // the purge's read, if it failed, says so in purgeErr
		}
	}()
	err = pendingsql.InTx(ctx, c.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, c.query, c.budget, c.configured)
		if err != nil {
			return err
		}
		var (
			name string
			s    destStats
		)
		_, err = pgx.ForEachRow(rows, []any{&name, &s.pending, &s.age, &s.capped, &s.dead, &s.paused, &s.live}, func() error {
			out[name] = s
			return nil
		})
		if err != nil {
			return err
		}
		read = true
		purged, purgeErr = c.readLastPurge(ctx, tx)
		return nil
	})
	return out, purged, purgeErr, err
}

// lastPurgeWait bounds, on the server, how long the last purge's read
// may take (a lock on River's table, a slow read): it fails alone then.
const lastPurgeWait = 200 * time.Millisecond

// purgeSlack is what the last purge's read leaves of the scrape's budget,
// for the commit and for the collection to end before the scrape stops
// waiting for it (its timer starts just before the collection's): past
// it, the scrape answered with outboxd_database_up 0 and the last values
// (a review's).
const purgeSlack = 250 * time.Millisecond

// readLastPurge runs lastPurgeSQL in a savepoint of tx, which a failure
// the server reports rolls back without ending tx, within lastPurgeWait
// and the scrape's budget less purgeSlack.
func (c *dbCollector) readLastPurge(ctx context.Context, tx pgx.Tx) (float64, error) {
	wait := c.purgeWait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)-purgeSlack)
	}
	if wait < time.Millisecond {
		return 0, fmt.Errorf("the destinations' read used the scrape's budget (%s): the last purge's read was not tried", c.timeout)
	}
	ms := strconv.FormatInt(wait.Milliseconds(), 10) // milliseconds, to set_config
	var purged float64
	err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		if _, err := sp.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $1, true)`, ms); err != nil {
			return err
		}
		return sp.QueryRow(ctx, c.purgeQuery).Scan(&purged)
	})
	return purged, err
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
