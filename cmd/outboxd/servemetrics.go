package main

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/outboxd/outboxd/worker"
)

// registerServeMetrics registers what /metrics serves: Go and process
// metrics, the dispatcher's, the database-backed gauges (dbmetrics.go) and
// outboxd_build_info. The database-backed gauges read through a pool of
// their own (one connection, opened at the first scrape), so a dispatcher
// that uses every connection of pool does not look like a database that
// does not answer. Close the returned pool.
func registerServeMetrics(reg prometheus.Registerer, pool *pgxpool.Pool, schema string, destinations []string,
	logger *slog.Logger) (*worker.Metrics, *pgxpool.Pool, error) {
	cfg := pool.Config()
	cfg.MaxConns, cfg.MinConns = 1, 0
	own, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newDBCollector(own, schema, destinations, metricsDBTimeout, newRateLog(logger, scrapeLogEvery)), newBuildInfo(),
	} {
		if err := reg.Register(c); err != nil {
			own.Close()
			return nil, nil, err
		}
	}
	m, err := worker.NewMetrics(reg)
	if err != nil {
		own.Close()
		return nil, nil, err
	}
	return m, own, nil
}
