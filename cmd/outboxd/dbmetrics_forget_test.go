package main

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/outbox"
)

// A destination not configured here that has read all zeros for
// forgetIdleAfter leaves /metrics, whether the database still lists it
// (an old pause row) or not (its messages purged); a configured one stays;
// a forgotten one that gets messages again comes back. The clock is the
// collector's, moved by hand.
func TestDatabaseGaugesForgetIdleNames(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	c := newDBCollector(b.pool, "outboxd", []string{"email-api"}, metricsDBTimeout, testRateLog(t))
	now := time.Unix(1_700_000_000, 0)
	c.now = func() time.Time { return now }
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	exec := func(sql string) {
		t.Helper()
		if _, err := b.pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	listed := func(when string, want map[string]bool) {
		t.Helper()
		g := gauges(t, reg)
		for name, in := range want {
			if _, ok := g["outboxd_pending_messages{"+name+"}"]; ok != in {
				t.Errorf("%s: %s listed %v, want %v (%v)", when, name, ok, in, g)
			}
		}
	}

	if _, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "crm", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	exec(`INSERT INTO outboxd.outbox_destinations (name, paused) VALUES ('old-api', false)`)
	listed("at the start", map[string]bool{"crm": true, "old-api": true, "email-api": true})
	exec(`DELETE FROM outboxd.outbox_messages`)
	now = now.Add(time.Minute)
	listed("crm purged", map[string]bool{"crm": true, "old-api": true, "email-api": true})
	now = now.Add(forgetIdleAfter - time.Second)
	listed("just under forgetIdleAfter of zeros for crm", map[string]bool{"crm": true, "old-api": false, "email-api": true})
	now = now.Add(time.Second)
	listed("forgetIdleAfter of zeros", map[string]bool{"crm": false, "old-api": false, "email-api": true})
	now = now.Add(time.Hour)
	listed("later", map[string]bool{"crm": false, "old-api": false, "email-api": true})

	if _, err := b.ob.Enqueue(ctx, b.pool, outbox.Message{Destination: "old-api", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	listed("old-api gets a message", map[string]bool{"crm": false, "old-api": true, "email-api": true})
	if g := gauges(t, reg); g["outboxd_pending_messages{old-api}"] != 1 {
		t.Fatalf("old-api back: %v", g)
	}
}
