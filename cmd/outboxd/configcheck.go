package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/httpheader"
	"github.com/outboxd/outboxd/worker"
)

// Defaults of worker.Config and worker.RetryPolicy that the checks below
// compare against, so that --check refuses what serve would.
const (
	defaultLeaseTTL        = 10 * time.Second
	defaultAcquireInterval = time.Second
	defaultRetryBase       = time.Second
	defaultRetryMax        = time.Hour
)

// validate refuses values that cannot work, naming the field and its
// line. Zero means "the default" everywhere, so negatives are refused and
// contradictions are judged after the defaults.
func (c *fileConfig) validate() error {
	if err := c.validateTop(); err != nil {
		return err
	}
	if err := c.validateConsole(); err != nil {
		return err
	}
	d := c.Dispatcher
	for _, f := range []struct {
		path string
		v    int64
	}{
		{"dispatcher.batch_size", int64(d.BatchSize)},
		{"dispatcher.batch_bytes", d.BatchBytes},
		{"dispatcher.per_key_batch", int64(d.PerKeyBatch)},
		{"dispatcher.lease_ttl", int64(d.LeaseTTL)},
		{"dispatcher.acquire_interval", int64(d.AcquireInterval)},
		{"dispatcher.sweep_interval", int64(d.SweepInterval)},
		{"dispatcher.shutdown_timeout", int64(d.ShutdownTimeout)},
		{"maintenance.interval", int64(c.Maintenance.Interval)},
		{"maintenance.delivered_retention", int64(c.Maintenance.DeliveredRetention)},
		{"maintenance.failure_retention", int64(c.Maintenance.FailureRetention)},
		{"maintenance.batch_size", int64(c.Maintenance.BatchSize)},
	} {
		if f.v < 0 {
			return c.errAt(f.path, "must not be negative")
		}
	}
	// Counts go to PostgreSQL as integers: past int4, every claim failed
	// to encode while /readyz said ready (an operator's trial).
	for _, f := range []struct {
		path string
		v    int
	}{{"dispatcher.batch_size", d.BatchSize}, {"dispatcher.per_key_batch", d.PerKeyBatch}, {"maintenance.batch_size", c.Maintenance.BatchSize}} {
		if f.v > worker.MaxCount {
			return c.errAt(f.path, "%d is over the most, %d", f.v, worker.MaxCount)
		}
	}
	for _, f := range []struct {
		path     string
		v, least time.Duration
	}{
		{"dispatcher.lease_ttl", d.LeaseTTL, worker.MinLeaseTTL},
		{"dispatcher.acquire_interval", d.AcquireInterval, worker.MinInterval},
		{"dispatcher.sweep_interval", d.SweepInterval, worker.MinInterval},
		{"maintenance.interval", c.Maintenance.Interval, worker.MinInterval},
	} {
		if f.v != 0 && f.v < f.least {
			return c.errAt(f.path, "%s is below the least, %s", f.v, f.least)
		}
	}
	ttl, ttlS := orDefault(d.LeaseTTL, defaultLeaseTTL)
	acq, acqS := orDefault(d.AcquireInterval, defaultAcquireInterval)
	if acq >= ttl {
		at := "dispatcher.acquire_interval"
		if d.AcquireInterval == 0 {
			at = "dispatcher.lease_ttl"
		}
		return fmt.Errorf("line %d: dispatcher.acquire_interval (%s) must be shorter than dispatcher.lease_ttl (%s)", c.line(at), acqS, ttlS)
	}
	if c.Maintenance.Duty < 0 || c.Maintenance.Duty > 1 {
		return c.errAt("maintenance.duty", "%g is not between 0 and 1", c.Maintenance.Duty)
	}
	if err := c.validateRetry("retry", c.Retry, retryConf{}); err != nil {
		return err
	}
	for name, dc := range c.Destinations {
		if err := c.validateDestination("destinations."+name, dc); err != nil {
			return err
		}
	}
	return nil
}

// validateTop checks the top-level settings the file gives; a flag or a
// variable may override them, but a wrong value in the file is still a
// mistake worth reporting.
func (c *fileConfig) validateTop() error {
	if v := c.LogLevel; v != "" && !validLevel(v) {
		return c.errAt("log_level", "%s is not a log level (want debug, info, warn or error)", c.show("log_level", v))
	}
	if v := c.Listen; v != "" && checkListen(v) != nil {
		return c.errAt("listen", "%s is not host:port (for example 127.0.0.1:9400 or :9400)", c.show("listen", v))
	}
	if v := c.Schema; v != "" {
		if err := dbschema.Validate(v); err != nil {
			return c.errAt("schema", "%s", strings.Replace(err.Error(), " "+strconv.Quote(v), "", 1))
		}
	}
	if v := c.DatabaseURL; v != "" {
		if err := checkDatabaseURL(v); err != nil {
			return c.errAt("database_url", "invalid URL: %v", err)
		}
	}
	return nil
}

func (c *fileConfig) validateDestination(p string, dc destinationConf) error {
	switch {
	case dc.Timeout < 0:
		return c.errAt(p+".timeout", "must not be negative")
	case dc.MaxConcurrency < 0:
		return c.errAt(p+".max_concurrency", "must not be negative")
	case dc.Rate < 0:
		return c.errAt(p+".rate", "must not be negative")
	case dc.Burst < 0:
		return c.errAt(p+".burst", "must not be negative")
	case dc.Type != "" && dc.Type != "http" && dc.Type != "nats":
		return c.errAt(p+".type", "%s is not a destination type (want http or nats)", c.show(p+".type", dc.Type))
	case dc.Type != "nats" && dc.URL == "":
		return c.errAt(p+".url", "required for an http destination")
	}
	// The URL may hold a token: errors show only its scheme and host.
	if dc.Type == "nats" {
		if dc.URL != "" && !natsURL(dc.URL) {
			return c.errAt(p+".url", "want a nats://, tls://, ws:// or wss:// URL, got %s", dispatch.RedactURL(dc.URL))
		}
	} else if u, err := url.Parse(dc.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c.errAt(p+".url", "want an http:// or https:// URL, got %s", dispatch.RedactURL(dc.URL))
	}
	for name, v := range dc.Headers {
		at := p + ".headers." + name
		if !httpheader.ValidName(name) {
			return fmt.Errorf("line %d: %s.headers: %q is not a valid header name", c.line(at), p, name)
		}
		// The value may be a secret: say what is wrong, not what it is.
		if !httpheader.ValidValue(v) {
			return fmt.Errorf("line %d: %s.headers.%s: the value holds a control character (a line break?)", c.line(at), p, name)
		}
		if set := httpheader.SetByHTTP(name, dc.Secret != "" || dc.SecretEnv != ""); set != "" && dc.Type != "nats" {
			return fmt.Errorf("line %d: %s.headers.%s: %s", c.line(at), p, name, set)
		}
	}
	if dc.Retry != nil {
		return c.validateRetry(p+".retry", *dc.Retry, c.Retry)
	}
	return nil
}

// validateRetry checks a retry policy as the worker will use it: a
// destination's zero fields inherit the global policy (parent), then the
// defaults.
func (c *fileConfig) validateRetry(path string, r, parent retryConf) error {
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"max_attempts", time.Duration(r.MaxAttempts)}, {"max_age", r.MaxAge}, {"base", r.Base}, {"max", r.Max}} {
		if f.v < 0 {
			return c.errAt(path+"."+f.name, "must not be negative")
		}
	}
	base, baseS := inherit(r.Base, parent.Base, defaultRetryBase)
	maxD, maxS := inherit(r.Max, parent.Max, defaultRetryMax)
	if maxD < base {
		at := path + ".max"
		if r.Max == 0 {
			at = path + ".base"
		}
		return fmt.Errorf("line %d: %s.max (%s) must not be shorter than %s.base (%s)", c.line(at), path, maxS, path, baseS)
	}
	return nil
}

// orDefault is v, or def when v is zero, and how an error shows it.
func orDefault(v, def time.Duration) (time.Duration, string) {
	if v == 0 {
		return def, "default " + def.String()
	}
	return v, v.String()
}

// inherit is a destination's retry value: its own, the global one, or the
// default, and how an error shows it.
func inherit(own, global, def time.Duration) (time.Duration, string) {
	switch {
	case own != 0:
		return own, own.String()
	case global != 0:
		return global, global.String() + ", from retry"
	}
	return def, "default " + def.String()
}

// natsURL reports whether s is a NATS server URL, or a comma-separated
// list of them, as nats.Connect takes.
func natsURL(s string) bool {
	for _, part := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil || u.Host == "" {
			return false
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return false
		}
	}
	return true
}
