package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/dispatch"
)

func TestBackoffDoublesWithJitterAndHonoursRetryAfter(t *testing.T) {
	p := RetryPolicy{Base: time.Second, Max: 8 * time.Second}.withDefaults()
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 10: 8 * time.Second} {
		for range 50 {
			got := p.Backoff(n, 0)
			if got < want/2 || got > want {
				t.Fatalf("attempt %d: %s, want within [%s, %s]", n, got, want/2, want)
			}
		}
	}
	if got := p.Backoff(1, 5*time.Second); got != 5*time.Second {
		t.Fatalf("Retry-After 5s gave %s", got)
	}
}

// A Retry-After beyond the policy's Max is capped at Max (docs: "capped at
// max"), so a downstream cannot park a key for a year.
func TestRetryAfterIsCappedAtMax(t *testing.T) {
	p := RetryPolicy{Base: time.Second, Max: 8 * time.Second}.withDefaults()
	if got := p.Backoff(1, 365*24*time.Hour); got != 8*time.Second {
		t.Fatalf("Retry-After of a year gave %s, want the 8s max", got)
	}
}

func TestExhaustion(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 3, MaxAge: time.Hour}.withDefaults()
	if p.exhausted(2, 0) || !p.exhausted(3, 0) {
		t.Fatal("attempt budget")
	}
	if p.exhausted(1, 59*time.Minute) || !p.exhausted(1, 61*time.Minute) {
		t.Fatal("age limit")
	}
}

// A destination's override replaces only the fields it sets; the others
// come from the global policy (docs/configuration.md), so a global max
// still caps its Retry-After.
func TestDestinationRetryOverrideInheritsTheGlobalPolicy(t *testing.T) {
	c := Config{Retry: RetryPolicy{Max: 5 * time.Second, MaxAge: time.Hour}.withDefaults(),
		RetryByDestination: map[string]RetryPolicy{"x": {MaxAttempts: 10}}}
	p := c.retryFor("x")
	if p.MaxAttempts != 10 || p.Max != 5*time.Second || p.MaxAge != time.Hour || p.Base != time.Second {
		t.Fatalf("override gave %+v", p)
	}
	if got := p.Backoff(1, 99999999*time.Second); got != 5*time.Second {
		t.Fatalf("Retry-After of 3 years under a global max of 5s: %s", got)
	}
}

// Values that cannot work are refused by validate, naming the field,
// instead of panicking or spinning later.
func TestConfigRefusesNegativeAndContradictoryValues(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"negative base":        func(c *Config) { c.Retry.Base = -time.Second },
		"negative max":         func(c *Config) { c.Retry.Max = -time.Second },
		"max below base":       func(c *Config) { c.Retry.Base, c.Retry.Max = time.Minute, time.Second },
		"negative attempts":    func(c *Config) { c.Retry.MaxAttempts = -3 },
		"negative age":         func(c *Config) { c.Retry.MaxAge = -time.Hour },
		"override below base":  func(c *Config) { c.RetryByDestination = map[string]RetryPolicy{"x": {Max: time.Millisecond}} },
		"negative acquire":     func(c *Config) { c.AcquireInterval = -time.Second },
		"negative sweep":       func(c *Config) { c.SweepInterval = -time.Second },
		"acquire beyond lease": func(c *Config) { c.AcquireInterval, c.LeaseTTL = 2*time.Second, time.Second },
		// Nanoseconds: the loops spun and no lease lasted (a trial).
		"lease of 2ns":          func(c *Config) { c.LeaseTTL, c.AcquireInterval = 2, 1 },
		"lease under 500ms":     func(c *Config) { c.LeaseTTL = 499 * time.Millisecond; c.AcquireInterval = 100 * time.Millisecond },
		"acquire of 1ns":        func(c *Config) { c.AcquireInterval = 1 },
		"sweep of 9ms":          func(c *Config) { c.SweepInterval = 9 * time.Millisecond },
		"maintenance every 1µs": func(c *Config) { c.Maintenance.Interval = time.Microsecond },
		// Stored in leases and attempt rows: a trial's started, then
		// failed every statement for ever.
		"ID not UTF-8":         func(c *Config) { c.ID = "a\xffb" },
		"ID with a line break": func(c *Config) { c.ID = "a\nb" },
		"ID with a C1 control": func(c *Config) { c.ID = "a\u0085b" },
		"ID over 100 bytes":    func(c *Config) { c.ID = strings.Repeat("x", 101) },
	} {
		c := Config{Destinations: map[string]dispatch.Destination{"x": &dispatch.Memory{}}}
		mutate(&c)
		d := c.withDefaults()
		err := d.validate()
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.HasPrefix(name, "ID ") != strings.Contains(err.Error(), "Config.ID") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// An ID with a line or paragraph separator or a direction override is
// refused too (it would break or reverse a log line); a long non-ASCII one
// within 100 bytes passes.
func TestCheckIDSeparatorsAndFormat(t *testing.T) {
	for _, id := range []string{"a\u2028b", "a\u2029b", "a\u202eb"} {
		if CheckID(id) == nil {
			t.Errorf("%q accepted", id)
		}
	}
	if err := CheckID(strings.Repeat("é", 50)); err != nil {
		t.Errorf("50 é (100 bytes): %v", err)
	}
	if err := CheckID(defaultIDHost() + "-12345-abcdefgh"); err != nil {
		t.Errorf("the default ID's form: %v", err)
	}
}
