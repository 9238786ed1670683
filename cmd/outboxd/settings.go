package main

import (
	"errors"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"
)

// serveSettings are serve's top-level settings once resolved, with where
// each came from for errors.
type serveSettings struct {
	listen, logLevel, logFormat       string
	listenAt, logLevelAt, logFormatAt origin
}

// resolveServe settles serve's top-level settings. Each takes the first of:
// its flag, its OUTBOXD_ environment variable, the config file, the default
// (docs/configuration.md). The database URL falls back to DATABASE_URL
// after the file.
func resolveServe(db *dbFlags, cfg *fileConfig, listen, logLevel, logFormat string) serveSettings {
	db.resolveWith(cfg)
	var s serveSettings
	s.listen, s.listenAt = pick("serve", listen, "listen", "OUTBOXD_LISTEN", cfg, "listen", cfg.Listen, "127.0.0.1:9400")
	s.logLevel, s.logLevelAt = pick("serve", logLevel, "log-level", "OUTBOXD_LOG_LEVEL", cfg, "log_level", cfg.LogLevel, "info")
	s.logFormat, s.logFormatAt = pick("serve", logFormat, "log-format", "OUTBOXD_LOG_FORMAT", cfg, "", "", "json")
	return s
}

// check refuses settings that serve could not start with.
func (s serveSettings) check() error {
	if !validLevel(s.logLevel) {
		return s.logLevelAt.errorf(s.logLevel, "not a log level", "want debug, info, warn or error")
	}
	if s.logFormat != "json" && s.logFormat != "text" {
		return s.logFormatAt.errorf(s.logFormat, "not a log format", "want json or text")
	}
	if checkListen(s.listen) != nil {
		return s.listenAt.errorf(s.listen, "not host:port", "for example 127.0.0.1:9400 or :9400")
	}
	return nil
}

// checkListen refuses an address net.Listen("tcp", ...) cannot take.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return err
	}
	return nil
}

func validLevel(s string) bool {
	_, err := parseLevel(s)
	return err == nil
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
	return 0, errors.New("not a log level")
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
