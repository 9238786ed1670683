package main

import (
	"errors"
	"log/slog"
	"net"
	"strings"

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
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return err
	}
	if host != "" && !listenHost(host) {
		return errors.New("not an IP address or a host name")
	}
	return nil
}

// listenHost says whether host can be an address to listen on: an IP
// (an IPv6 one possibly with a zone) or a name made of letters, digits,
// hyphens and underscores whose last label is not all digits, which is how a
// mistyped IPv4 address (256.1.1.1, 10.0.0) would otherwise pass. The name
// is not looked up: --check works offline.
func listenHost(host string) bool {
	addr, zone, zoned := strings.Cut(host, "%")
	if ip := net.ParseIP(addr); ip != nil {
		return !zoned || zone != "" && ip.To4() == nil // a zone is IPv6's only
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		if strings.IndexFunc(l, notHostRune) >= 0 {
			return false
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

// notHostRune is a rune a host name's label cannot hold.
func notHostRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		return false
	}
	return true
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
