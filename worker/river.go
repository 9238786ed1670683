package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/outboxd/outboxd/internal/loglimit"
)

type pgxTx = pgx.Tx

const riverQueue = "outboxd"

// maintenanceArgs names the interval it was queued for: the unique key
// counts it (ByArgs), so that a run queued for a shorter interval starting
// at the same time (a process before a configuration change) does not
// take a longer interval's period (an operator's trial: a change from 1m
// to 2h left the first two hours without a purge).
type maintenanceArgs struct {
	Every string `json:"every,omitempty"`
}

func (maintenanceArgs) Kind() string { return "outboxd_maintenance" }

// kickArgs is a retired job kind: earlier versions had the leader NOTIFY
// every lane with due work every 5 s, with a query that read the whole
// pending backlog. Each lane runner's own sweep (SweepInterval), or for
// an empty lane the idle probe (idle.go), is the backstop now. The worker stays so that jobs queued by an older version
// complete instead of failing as unknown.
type kickArgs struct{}

func (kickArgs) Kind() string { return "outboxd_kick" }

type maintenanceWorker struct {
	river.WorkerDefaults[maintenanceArgs]
	d *Dispatcher
}

// maxPurgeBudget bounds a run's time below River's rescue of running
// jobs (RescueStuckJobsAfter, an hour, run by whichever client leads, an
// application's too): past it the run's job was discarded while it still
// worked, and its success never recorded (a review's).
const maxPurgeBudget = 50 * time.Minute

// purgeBudget is a run's time: half the interval it was queued for (its
// args; this process's interval for a job that names none, from an older
// version), at most maxPurgeBudget.
func (w *maintenanceWorker) purgeBudget(job *river.Job[maintenanceArgs]) time.Duration {
	every := w.d.cfg.Maintenance.Interval
	if job != nil {
		if d, err := time.ParseDuration(job.Args.Every); err == nil && d > 0 {
			every = d
		}
	}
	return min(every/2, maxPurgeBudget)
}

// Timeout outlasts the purge's budget: River's default of a minute cut
// the purge of a longer interval short, and called it a failure (a
// review's).
func (w *maintenanceWorker) Timeout(job *river.Job[maintenanceArgs]) time.Duration {
	return w.purgeBudget(job) + time.Minute
}

func (w *maintenanceWorker) Work(ctx context.Context, job *river.Job[maintenanceArgs]) error {
	res, err := w.d.Purge(ctx, w.purgeBudget(job))
	if err != nil {
		// River logs a failed job at info, which its logger here drops:
		// without this line a purge that keeps failing says nothing. Only
		// a stop (the context cancelled) is not worth a line.
		if !errors.Is(ctx.Err(), context.Canceled) {
			if ok, held := w.d.logs.Allow("purge failed"); ok {
				hint := "tried again within about 20 s, twice at most, then at the next period"
				if isPrivilegeError(err) {
					hint = "the role lacks a privilege (" + privilegesDoc + ")"
				}
				w.d.log.Warn("the purge failed; "+hint, "error", err, "similar_lines_left_out", held)
			}
		}
		return err
	}
	if res.InboxKeys+res.DeliveredMessages+res.Failures+res.OrderingKeys > 0 {
		w.d.log.Info("purged", "inbox_keys", res.InboxKeys, "delivered_messages", res.DeliveredMessages,
			"inbox_failures", res.Failures, "ordering_keys", res.OrderingKeys)
	}
	return nil
}

type kickWorker struct {
	river.WorkerDefaults[kickArgs]
}

func (*kickWorker) Work(context.Context, *river.Job[kickArgs]) error { return nil }

// newRiver builds the River client that works the purge's jobs (and
// takes part in River's leader election, whose leader cleans finished
// jobs up).
func (d *Dispatcher) newRiver() (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(d.pool), d.riverConfig())
}

func (d *Dispatcher) riverConfig() *river.Config {
	workers := river.NewWorkers()
	river.AddWorker(workers, &maintenanceWorker{d: d})
	river.AddWorker(workers, &kickWorker{})
	return &river.Config{
		Schema:                      d.cfg.Schema,
		ID:                          d.cfg.ID,
		Queues:                      map[string]river.QueueConfig{riverQueue: {MaxWorkers: 2}},
		Workers:                     workers,
		CompletedJobRetentionPeriod: completedRetention(d.cfg.Maintenance.Interval),
		// River's reindexer (its leader's, nightly) rebuilds river_job's
		// indexes with REINDEX CONCURRENTLY, which only their owner may
		// run: the runtime role of docs/operations.md cannot, and its
		// leader logged an error per index each night (a review's).
		ReindexerIndexNames: []string{},
		// River logs routine leadership and job events at info; keep its
		// warnings and errors, with our component and dispatcher fields.
		Logger: slog.New(leveled{Handler: d.log.Handler(), min: slog.LevelWarn, limit: &d.logs}),
	}
}

// scheduleMaintenance queues a purge run at once, then at each multiple
// of Maintenance.Interval on the clock (at least a second: River's least
// unique period), until ctx ends. Every dispatcher does, not River's
// leader alone: an application's River client working its own jobs in
// this schema (inbox's async mode) may hold the leadership, and a
// leader's periodic jobs are its own configuration's, so the purge never
// ran while it led. The job is unique within its period (River's unique
// index, on the inserting process's clock) and any dispatcher's River
// client works it: one run per period whatever the number of dispatchers,
// and, the periods being the clock's, runs an interval apart across
// restarts (a ticker from each start let a restart that found its period
// done push the next run almost two intervals away: a review's). A failed
// run is tried again twice, within about 20 s (River's backoff: 1 s, 16 s),
// for a passing error; then the next period's run tries (River's 25
// attempts over days piled up beside the new runs).
func (d *Dispatcher) scheduleMaintenance(ctx context.Context) {
	period := max(d.cfg.Maintenance.Interval, time.Second)
	opts := &river.InsertOpts{Queue: riverQueue, MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByPeriod: period, ByArgs: true}}
	args := maintenanceArgs{Every: period.String()}
	for {
		if _, err := d.river.Insert(ctx, args, opts); err != nil && ctx.Err() == nil {
			if ok, held := d.logs.Allow("maintenance queued"); ok {
				d.log.Warn("the purge's run could not be queued; tried again next interval", "error", err,
					"interval", period, "similar_lines_left_out", held)
			}
		}
		now := time.Now()
		t := time.NewTimer(now.Truncate(period).Add(period).Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// completedRetention is how long River keeps completed jobs: an hour, or
// two maintenance intervals when longer, so that the last completed purge
// run (they start an interval apart, and end within half of one) is there
// for outboxd serve's outboxd_maintenance_last_success_timestamp_seconds
// while the purge works.
func completedRetention(interval time.Duration) time.Duration {
	return max(time.Hour, 2*interval)
}

// leveled drops records below a minimum level, and lets through at most
// one line per message text per logEvery (River logs each failed poll and
// reconnect during an outage).
type leveled struct {
	slog.Handler
	min   slog.Level
	limit *loglimit.Limiter
}

func (h leveled) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h leveled) Handle(ctx context.Context, r slog.Record) error {
	ok, held := h.limit.Allow("river/" + r.Message)
	if !ok {
		return nil
	}
	if held > 0 {
		r.AddAttrs(slog.Int("similar_lines_left_out", held))
	}
	return h.Handler.Handle(ctx, r)
}

func (h leveled) WithAttrs(a []slog.Attr) slog.Handler {
	return leveled{h.Handler.WithAttrs(a), h.min, h.limit}
}

func (h leveled) WithGroup(n string) slog.Handler {
	return leveled{h.Handler.WithGroup(n), h.min, h.limit}
}
