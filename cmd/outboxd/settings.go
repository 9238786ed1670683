package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// resolveServe settles serve's top-level settings. Each takes the first of:
// its flag, its OUTBOXD_ environment variable, the config file, the default
// (docs/configuration.md). The database URL falls back to DATABASE_URL
// after the file.
func resolveServe(db *dbFlags, cfg *fileConfig, listen, logLevel, logFormat *string) {
	db.resolve(cfg.DatabaseURL, cfg.Schema)
	*listen = firstSet(*listen, os.Getenv("OUTBOXD_LISTEN"), cfg.Listen, "127.0.0.1:9400")
	*logLevel = firstSet(*logLevel, os.Getenv("OUTBOXD_LOG_LEVEL"), cfg.LogLevel, "info")
	*logFormat = firstSet(*logFormat, os.Getenv("OUTBOXD_LOG_FORMAT"), "json")
}

// parseLevel reads a log level as operators write it.
func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (want debug, info, warn or error)", s)
}

// newBuildInfo is outboxd_build_info: 1, labelled like `outboxd version`.
func newBuildInfo() prometheus.Collector {
	b := readBuildInfo()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "outboxd_build_info",
		Help:        "Always 1; the labels say which outboxd this is.",
		ConstLabels: prometheus.Labels{"version": b.version, "commit": b.commit, "goversion": b.goVersion},
	})
	g.Set(1)
	return g
}
