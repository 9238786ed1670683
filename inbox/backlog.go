package inbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Backlog is one source's async events still waiting for their handler.
type Backlog struct {
	Source string    // the source's name
	Count  int       // events waiting
	Oldest time.Time // received_at of the oldest
}

// Unprocessed lists, per source, the events received in async mode whose
// handler has not committed yet. The purge never deletes them, whatever
// their age, so an event whose job was lost (discarded by River after its
// last attempt, deleted by hand) stays here until someone acts: alert on
// the oldest's age.
func (in *Inbox) Unprocessed(ctx context.Context, db DB) ([]Backlog, error) {
	rows, err := db.Query(ctx, in.render(unprocessedSQL))
	if err != nil {
		return nil, fmt.Errorf("inbox: unprocessed: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Backlog])
	if err != nil {
		return nil, fmt.Errorf("inbox: unprocessed: %w", err)
	}
	return out, nil
}

// BacklogCollector exports Unprocessed at every scrape:
//
//	outboxd_inbox_unprocessed_events{source}               async events waiting for their handler
//	outboxd_inbox_oldest_unprocessed_age_seconds{source}   age of the oldest of them
//
// Register it on one process per database (the query scans the waiting
// events); docs/receiving.md has an alert rule.
func BacklogCollector(db DB, in *Inbox) prometheus.Collector {
	return &backlogCollector{db: db, in: in}
}

var (
	backlogCount = prometheus.NewDesc("outboxd_inbox_unprocessed_events",
		"Events received in async mode whose handler has not committed yet.", []string{"source"}, nil)
	backlogAge = prometheus.NewDesc("outboxd_inbox_oldest_unprocessed_age_seconds",
		"Age of the oldest event received in async mode whose handler has not committed yet.", []string{"source"}, nil)
)

type backlogCollector struct {
	db DB
	in *Inbox
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- backlogCount; ch <- backlogAge }

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := c.in.Unprocessed(ctx, c.db)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(backlogCount, err)
		return
	}
	for _, b := range rows {
		ch <- prometheus.MustNewConstMetric(backlogCount, prometheus.GaugeValue, float64(b.Count), b.Source)
		ch <- prometheus.MustNewConstMetric(backlogAge, prometheus.GaugeValue, time.Since(b.Oldest).Seconds(), b.Source)
	}
}
