package main

import (
	"fmt"
	"net/url"
	"time"

	"github.com/outboxd/outboxd/dispatch"
)

// validate refuses values that cannot work, naming the field. Zero means
// "the default" everywhere, so only negatives and contradictions are
// refused here.
func (c *fileConfig) validate() error {
	if _, err := parseLevel(c.LogLevel); c.LogLevel != "" && err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	d := c.Dispatcher
	for _, f := range []struct {
		path string
		v    int64
	}{
		{"dispatcher.batch_size", int64(d.BatchSize)},
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
			return fmt.Errorf("%s: must not be negative", f.path)
		}
	}
	if d.LeaseTTL > 0 && d.AcquireInterval > 0 && d.AcquireInterval >= d.LeaseTTL {
		return fmt.Errorf("dispatcher.acquire_interval (%s) must be shorter than dispatcher.lease_ttl (%s)", d.AcquireInterval, d.LeaseTTL)
	}
	if c.Maintenance.Duty < 0 || c.Maintenance.Duty > 1 {
		return fmt.Errorf("maintenance.duty: %g is not between 0 and 1", c.Maintenance.Duty)
	}
	if err := c.Retry.validate("retry"); err != nil {
		return err
	}
	for name, dc := range c.Destinations {
		p := "destinations." + name
		switch {
		case dc.Timeout < 0:
			return fmt.Errorf("%s.timeout: must not be negative", p)
		case dc.MaxConcurrency < 0:
			return fmt.Errorf("%s.max_concurrency: must not be negative", p)
		case dc.Rate < 0:
			return fmt.Errorf("%s.rate: must not be negative", p)
		case dc.Burst < 0:
			return fmt.Errorf("%s.burst: must not be negative", p)
		case dc.Type != "" && dc.Type != "http" && dc.Type != "nats":
			return fmt.Errorf("%s.type: unknown type %q (want http or nats)", p, dc.Type)
		case dc.Type != "nats" && dc.URL == "":
			return fmt.Errorf("%s.url: required for an http destination", p)
		}
		if u, err := url.Parse(dc.URL); dc.Type != "nats" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			// The URL may hold a token: show only its scheme and host.
			return fmt.Errorf("%s.url: want an http:// or https:// URL, got %s", p, dispatch.RedactURL(dc.URL))
		}
		if dc.Retry != nil {
			if err := dc.Retry.validate(p + ".retry"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r retryConf) validate(path string) error {
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"max_attempts", time.Duration(r.MaxAttempts)}, {"max_age", r.MaxAge}, {"base", r.Base}, {"max", r.Max}} {
		if f.v < 0 {
			return fmt.Errorf("%s.%s: must not be negative", path, f.name)
		}
	}
	if r.Base > 0 && r.Max > 0 && r.Max < r.Base {
		return fmt.Errorf("%s.max (%s) must not be shorter than %s.base (%s)", path, r.Max, path, r.Base)
	}
	return nil
}
