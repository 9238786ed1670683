package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/worker"
)

// fileConfig is the daemon's configuration file (YAML). docs/configuration.md
// documents every field; unknown fields are an error, so typos do not pass
// silently (loadConfig in configload.go).
type fileConfig struct {
	DatabaseURL string         `yaml:"database_url"`
	Schema      string         `yaml:"schema"`
	Listen      string         `yaml:"listen"`
	LogLevel    string         `yaml:"log_level"`
	Dispatcher  dispatcherConf `yaml:"dispatcher"`
	Retry       retryConf      `yaml:"retry"`
	Maintenance struct {
		Interval           time.Duration `yaml:"interval"`
		DeliveredRetention time.Duration `yaml:"delivered_retention"`
		FailureRetention   time.Duration `yaml:"failure_retention"`
		BatchSize          int           `yaml:"batch_size"`
		Duty               float64       `yaml:"duty"`
	} `yaml:"maintenance"`
	Destinations map[string]destinationConf `yaml:"destinations"`
	Console      *consoleConf               `yaml:"console"`

	// Where each value was found, by path ("destinations.a.url"): errors
	// name the line, and show the ${VAR} expression, never the value it
	// came from.
	path    string
	lines   map[string]int
	fromEnv map[string]string
}

// origin is where the file's value at key came from.
func (c *fileConfig) origin(key string) origin {
	return origin{name: fmt.Sprintf("config %s: line %d: %s", c.path, c.lines[key], key), echo: c.fromEnv[key] == "", expr: c.fromEnv[key]}
}

// errAt is an error about the value at key, with its line.
func (c *fileConfig) errAt(key, format string, args ...any) error {
	return fmt.Errorf("line %d: %s: %s", c.line(key), key, fmt.Sprintf(format, args...))
}

// line is where key is in the file, or, for a missing key, its parent.
func (c *fileConfig) line(key string) int {
	for key != "" {
		if n, ok := c.lines[key]; ok {
			return n
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 1
}

// show is the value at key as an error may quote it.
func (c *fileConfig) show(key, v string) string {
	if e := c.fromEnv[key]; e != "" {
		return fmt.Sprintf("the value of %q", e)
	}
	return fmt.Sprintf("%q", v)
}

type dispatcherConf struct {
	BatchSize       int           `yaml:"batch_size"`
	BatchBytes      int64         `yaml:"batch_bytes"`
	PerKeyBatch     int           `yaml:"per_key_batch"`
	LeaseTTL        time.Duration `yaml:"lease_ttl"`
	AcquireInterval time.Duration `yaml:"acquire_interval"`
	SweepInterval   time.Duration `yaml:"sweep_interval"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

type retryConf struct {
	MaxAttempts int           `yaml:"max_attempts"`
	MaxAge      time.Duration `yaml:"max_age"`
	Base        time.Duration `yaml:"base"`
	Max         time.Duration `yaml:"max"`
}

func (r retryConf) policy() worker.RetryPolicy {
	return worker.RetryPolicy{MaxAttempts: r.MaxAttempts, MaxAge: r.MaxAge, Base: r.Base, Max: r.Max}
}

type destinationConf struct {
	Type           string            `yaml:"type"` // http (default) or nats
	URL            string            `yaml:"url"`
	Secret         string            `yaml:"secret"`
	SecretEnv      string            `yaml:"secret_env"`
	Headers        map[string]string `yaml:"headers"`
	Timeout        time.Duration     `yaml:"timeout"`
	MaxConcurrency int               `yaml:"max_concurrency"`
	Rate           float64           `yaml:"rate"`
	Burst          int               `yaml:"burst"`
	Retry          *retryConf        `yaml:"retry"`
	Subject        string            `yaml:"subject"` // nats
}

// destinations builds every configured destination.
// destErr is an error building destination name, with the file, the
// line and the path of the field at fault (field: "" when the builder
// does not say which, as dispatch's errors do not), as load's errors are.
func (c *fileConfig) destErr(name, field string, err error) error {
	key := "destinations." + name
	if field != "" {
		key += "." + field
	}
	return fmt.Errorf("config %s: line %d: %s: %w", c.path, c.line(key), key, err)
}

func (c *fileConfig) destinations() (map[string]dispatch.Destination, map[string]worker.RetryPolicy, []func(), error) {
	if len(c.Destinations) == 0 {
		return nil, nil, nil, errors.New("no destinations configured: name at least one under destinations: in the config file")
	}
	dests := map[string]dispatch.Destination{}
	retries := map[string]worker.RetryPolicy{}
	var closers []func()
	for name, dc := range c.Destinations {
		secret := dc.Secret
		if dc.SecretEnv != "" {
			secret = os.Getenv(dc.SecretEnv)
			if secret == "" {
				return nil, nil, closers, c.destErr(name, "secret_env", fmt.Errorf("%s is not set", dc.SecretEnv))
			}
		}
		switch dc.Type {
		case "", "http":
			// ${VAR} in headers was expanded at load, as in every value.
			headers := http.Header{"User-Agent": {userAgent()}}
			for k, v := range dc.Headers {
				headers.Set(k, v)
			}
			d, err := dispatch.NewHTTP(&dispatch.HTTPConfig{
				URL: dc.URL, Secret: secret, Headers: headers, Timeout: dc.Timeout,
				MaxConcurrency: dc.MaxConcurrency, Rate: dc.Rate, Burst: dc.Burst,
			})
			if err != nil {
				return nil, nil, closers, c.destErr(name, "", err)
			}
			dests[name] = d
		case "nats":
			d, err := dispatch.NewNATS(&dispatch.NATSConfig{URL: dc.URL, Subject: dc.Subject, Timeout: dc.Timeout})
			if err != nil {
				return nil, nil, closers, c.destErr(name, "", err)
			}
			dests[name] = d
			closers = append(closers, d.Close)
		default:
			return nil, nil, closers, c.destErr(name, "type", fmt.Errorf("%q is not a destination type (want http or nats)", dc.Type))
		}
		if dc.Retry != nil {
			retries[name] = dc.Retry.policy()
		}
	}
	return dests, retries, closers, nil
}
