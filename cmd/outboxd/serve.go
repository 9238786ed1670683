package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outboxd/outboxd/console"
	"github.com/outboxd/outboxd/worker"
)

const serveUsage = `usage: outboxd serve [--config FILE] [flags]

Runs the dispatcher: drains the outbox to the destinations the config file
names, until SIGTERM or SIGINT, then stops gracefully. Serves /healthz,
/readyz and /metrics on --listen, and the operator console on its own
address when the file has a console: section (docs/operations.md).

Each top-level setting comes from its flag, else its OUTBOXD_ environment
variable, else the config file, else the default (docs/configuration.md).`

// slowStartAfter is how long the dispatcher's start may wait for the
// database before serve says so.
const slowStartAfter = 5 * time.Second

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := newDBFlags("serve", serveUsage)
	configPath := fs.String("config", "", "YAML configuration `FILE` (see docs/configuration.md)")
	listen := fs.String("listen", "", "`ADDRESS` for /healthz, /readyz and /metrics (default $OUTBOXD_LISTEN, then listen: in the file, then 127.0.0.1:9400)")
	migrate := fs.Bool("migrate", false, "apply pending migrations before starting")
	logFormat := fs.String("log-format", "", "log `FORMAT`: json or text (default $OUTBOXD_LOG_FORMAT, then json)")
	logLevel := fs.String("log-level", "", "log `LEVEL`: debug, info, warn or error (default $OUTBOXD_LOG_LEVEL, then log_level: in the file, then info)")
	var check checkMode
	fs.Var(&check, "check", "validate the configuration and exit; --check=connect also connects to the database and each destination's host")
	id := fs.String("id", "", "dispatcher `ID` in leases and attempt records (default hostname-pid-random)")
	operands, help, err := fs.parse(args, stdout)
	if help || err != nil {
		return err
	}
	if len(operands) > 0 {
		return fs.usageErr(fmt.Sprintf("unexpected argument %q", operands[0]))
	}
	// --id "$POD_NAME" with the variable unset ran under a random id.
	if err := fs.refuseEmpty("id"); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return usageErrorf("%v", err)
	}
	set := resolveServe(db, cfg, *listen, *logLevel, *logFormat)
	if err := set.check(); err != nil {
		return err
	}
	if err := db.checkSchema(); err != nil {
		return err
	}
	// Before anything connects: worker.New refuses it too, but only once
	// the database answers.
	if err := worker.CheckID(*id); err != nil {
		return usageErrorf("--id %v", err)
	}
	logger := newLogger(set.logFormat, set.logLevel, stderr)
	dests, retries, closers, err := cfg.destinations()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	if err != nil {
		return usageErrorf("%v", err)
	}
	if err := checkConsoleListen(cfg.Console, set.listen); err != nil {
		return usageErrorf("%v", err)
	}
	var consoleUsers []console.User
	if cfg.Console != nil {
		if consoleUsers, err = cfg.Console.consoleUsers(); err != nil {
			return usageErrorf("%v", err)
		}
	}
	if check != "" {
		return runCheck(ctx, check, db, cfg, set.listen, stdout)
	}

	// The ops port answers from here on: a liveness probe must not take a
	// long index build (serve --migrate) for a dead process.
	ops, err := startOps(set, logger)
	if err != nil {
		return err
	}
	defer ops.close()
	var consoleSrv *consoleServer
	if cfg.Console != nil {
		if consoleSrv, err = listenConsole(cfg.Console, logger); err != nil {
			return err
		}
		defer consoleSrv.close() // after the console's stop, nothing left to do
	}
	// A signal before the dispatcher starts is a stop, not a failure.
	stopped := func(err error) error {
		if ctx.Err() == nil {
			return err
		}
		logger.Info("stopped before the dispatcher started", "while", "connecting to the database")
		return nil
	}
	if *migrate {
		ops.starting("connecting to the database")
		sqlDB, err := db.openSQL(ctx)
		if err != nil {
			return stopped(err)
		}
		ops.starting("applying migrations (see the log)")
		err = migrateUp(ctx, sqlDB, db.schema, slog.New(migrationPhase{logger.Handler(), ops}))
		sqlDB.Close()
		if err != nil && ctx.Err() != nil {
			logger.Warn("stopped while applying migrations; serve --migrate or migrate up finishes them", "error", err)
			return nil
		}
		if err != nil {
			return describeMigrateError(err)
		}
	}
	ops.starting("connecting to the database")
	pool, err := db.openPool(ctx)
	if err != nil {
		return stopped(err)
	}
	if hosts := hostsWithoutRole(&pool.Config().ConnConfig.Config); hosts != nil {
		logger.Warn("the database URL names several hosts without target_session_attrs=read-write (or primary): each new connection tries them "+
			"in order, waits out a silent one each time and may land on a standby; add target_session_attrs=read-write",
			"hosts", strings.Join(hosts, ","))
	}
	var closeBy time.Time // set once the stop begins: see closePools
	pools := []interface{ Close() }{pool}
	defer func() { closePools(closeBy, logger, pools...) }()
	// Deferred calls run last first: the ops port closes before the pool
	// (its /readyz reads the pool). A second close does nothing.
	defer ops.close()
	ops.starting("starting the dispatcher")
	logInvalidIndexes(ctx, pool, db.schema, logger)
	logConnectionLimits(ctx, pool, cfg.Console != nil, logger)

	reg := prometheus.NewRegistry()
	metrics, metricsPool, err := registerServeMetrics(reg, pool, db.schema, slices.Sorted(maps.Keys(dests)), logger)
	if err != nil {
		return err
	}
	pools = append(pools, metricsPool)

	d, err := worker.New(pool, &worker.Config{
		Schema: db.schema, Destinations: dests, Retry: cfg.Retry.policy(), RetryByDestination: retries,
		BatchSize: cfg.Dispatcher.BatchSize, BatchBytes: cfg.Dispatcher.BatchBytes, PerKeyBatch: cfg.Dispatcher.PerKeyBatch,
		LeaseTTL: cfg.Dispatcher.LeaseTTL, AcquireInterval: cfg.Dispatcher.AcquireInterval,
		SweepInterval: cfg.Dispatcher.SweepInterval,
		Maintenance: worker.Maintenance{
			Interval: cfg.Maintenance.Interval, DeliveredRetention: cfg.Maintenance.DeliveredRetention,
			FailureRetention: cfg.Maintenance.FailureRetention,
			BatchSize:        cfg.Maintenance.BatchSize, Duty: cfg.Maintenance.Duty,
		},
		ID: *id, Logger: logger, Metrics: metrics,
	})
	if err != nil {
		return usageErrorf("%v", err)
	}

	handler := opsHandler(pool, d, reg, logger)
	stopConsole := func(context.Context) {}
	if cfg.Console != nil {
		if stopConsole, err = startConsole(ctx, consoleSrv, cfg.Console, consoleUsers, pool, db.schema, slices.Sorted(maps.Keys(dests)), logger); err != nil {
			return err
		}
		defer func() { stopConsole(context.Background()) }() // an early return; a second call does nothing
	}
	// ctx ends at the signal; cancelling Start's context would stop the
	// dispatcher abruptly, so once started the signal goes through Stop's
	// grace period. Start's own work (a query that may wait on a lock)
	// still ends at the signal.
	startCtx, cancelStart := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStart()
	signalled := context.AfterFunc(ctx, cancelStart)
	slowStart := time.AfterFunc(slowStartAfter, func() {
		ops.starting("starting the dispatcher: waiting for the database (see the log)")
		logger.Warn("the dispatcher has not started after " + slowStartAfter.String() + ": its start waits for the database " +
			"(a lock held on outboxd's tables, such as a migration's or a LOCK TABLE, or a server that does not answer; " +
			"pg_locks and pg_stat_activity show what the sessions named \"outboxd serve\" wait for)")
	})
	err = d.Start(startCtx)
	slowStart.Stop()
	signalled()
	if err != nil {
		if ctx.Err() != nil {
			logger.Info("stopped before the dispatcher started")
			return nil
		}
		return describeDBError(err)
	}
	// Only now: until the dispatcher started, /readyz says serve starts
	// and /metrics has outboxd_starting (the dispatcher's handler said
	// "not ready" behind a lock, with nothing in the log).
	ops.serve(handler)
	// The settings in effect, defaults included: what a config value
	// left out (or 0) became.
	eff := d.Config()
	logger.Info("outboxd serving", "listen", ops.addr(), "schema", db.schema, "dispatcher", d.ID(), "destinations", len(dests),
		"batch_size", eff.BatchSize, "batch_bytes", eff.BatchBytes, "per_key_batch", eff.PerKeyBatch, "lease_ttl", eff.LeaseTTL,
		"acquire_interval", eff.AcquireInterval, "sweep_interval", eff.SweepInterval, "shutdown_timeout", shutdownTimeout(cfg),
		"maintenance_interval", eff.Maintenance.Interval, "delivered_retention", eff.Maintenance.DeliveredRetention,
		"failure_retention", eff.Maintenance.FailureRetention)

	<-ctx.Done()
	ops.serve(stoppingHandler(handler))
	logger.Info("stopping: finishing in-flight deliveries", "timeout", shutdownTimeout(cfg))
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout(cfg))
	defer cancel()
	closeBy = time.Now().Add(shutdownTimeout(cfg) + worker.StuckGrace)
	err = d.Stop(stopCtx)
	ops.shutdown(stopCtx)
	stopConsole(stopCtx)
	if errors.Is(err, worker.ErrAbandoned) {
		// The worker's error joins one per part that ran out of time;
		// for people, one sentence, said only when deliveries were cut.
		return fmt.Errorf("stopped after shutdown_timeout (%s) with deliveries in flight; they were cut off and will be sent again", shutdownTimeout(cfg))
	}
	if err != nil {
		return errors.New(strings.ReplaceAll(describe(err).Error(), "\n", "; "))
	}
	logger.Info("stopped")
	return nil
}

// closePools closes the pools together, waiting for the connections in
// use at most until closeBy (zero: for ever) and at least a second: with
// the database hanging, a River goroutine's statement held pool.Close, and
// the exit, for many seconds past the stop's bound; the process's exit
// closes them. Together: /metrics' pool, closed before on its own and
// without a bound, held a trial's exit 0.9 s past the stop's (a scrape
// waiting on a lock).
func closePools(closeBy time.Time, logger *slog.Logger, pools ...interface{ Close() }) {
	closeAll := func() {
		var wg sync.WaitGroup
		for _, p := range pools {
			wg.Go(p.Close)
		}
		wg.Wait()
	}
	if closeBy.IsZero() {
		closeAll()
		return
	}
	closed := make(chan struct{})
	go func() {
		closeAll()
		close(closed)
	}()
	t := time.NewTimer(max(time.Until(closeBy), time.Second))
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		logger.Warn("database connections still busy at exit (the database does not answer); they close with the process")
	}
}

func shutdownTimeout(cfg *fileConfig) time.Duration {
	if cfg.Dispatcher.ShutdownTimeout > 0 {
		return cfg.Dispatcher.ShutdownTimeout
	}
	return 30 * time.Second
}

// newLogger builds the logger; serveSettings.check vetted format and level.
func newLogger(format, level string, w io.Writer) *slog.Logger {
	lvl, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: redactAttr}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// readyzPing bounds /readyz's look at the database.
const readyzPing = 2 * time.Second

// pingPool pings the database through pool. A ping that fails on an open
// connection is tried again, within ctx and once per connection the pool
// may hold: a failed ping drops its connection, and a pooled connection
// PostgreSQL closed (pg_terminate_backend, idle_session_timeout, a
// restart) is found dead only when used, which made /readyz say "database
// unreachable" with the database up. A failure to connect ends it: a
// server refusing connections (too many clients) is not asked again.
func pingPool(ctx context.Context, pool *pgxpool.Pool) error {
	err := pool.Ping(ctx)
	var refused *pgconn.ConnectError
	for range pool.Config().MaxConns {
		if err == nil || ctx.Err() != nil || errors.As(err, &refused) {
			break
		}
		err = pool.Ping(ctx)
	}
	return err
}

// opsHandler serves the operator endpoints.
func opsHandler(pool *pgxpool.Pool, d *worker.Dispatcher, reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyzPing)
		defer cancel()
		if err := pingPool(ctx, pool); err != nil {
			// A pool whose every connection waits on a lock (VACUUM FULL of
			// outbox_messages) gives no connection to the ping either: the
			// database may be up (a trial's operator was told it was not).
			msg := "database unreachable: "
			if errors.Is(err, context.DeadlineExceeded) {
				msg = "no answer from the database within " + readyzPing.String() +
					" (down, or every pooled connection busy: claims waiting on a lock of outboxd's tables?): "
			}
			http.Error(w, msg+describeDBError(err).Error(), http.StatusServiceUnavailable)
			return
		}
		if refused := d.Refused(); len(refused) > 0 {
			http.Error(w, "dispatcher not ready: the database refuses its role a privilege for: "+strings.Join(refused, ", ")+
				` (see the log, and docs/operations.md, "Roles and grants")`, http.StatusServiceUnavailable)
			return
		}
		if !d.Ready() {
			why := "not listening for commits, its leases not renewed within lease_ttl, or the schema older than this outboxd or missing one of its tables (see the log)"
			if failing := d.Failing(); failing != "" {
				why = failing + " (see the log)"
			}
			http.Error(w, "dispatcher not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
		// Other dispatchers' business, so not a readiness failure, but the
		// first place an operator looks.
		unserved := d.Unserved()
		for _, name := range slices.Sorted(maps.Keys(unserved)) {
			b := unserved[name]
			atLeast := ""
			if b.Capped {
				atLeast = "at least "
			}
			fmt.Fprintf(w, "warning: destination %q: %s%d pending messages, no live dispatcher serves it\n", name, atLeast, b.Pending)
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A collector that fails costs its own series, never the scrape:
		// /metrics is what operators read while things go wrong.
		ErrorHandling: promhttp.ContinueOnError, ErrorLog: promhttpLog{newRateLog(logger, scrapeLogEvery)}}))
	return mux
}
