package inbox_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/pgtest"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// The receiver's alert rules parse, use 10-minute windows, and name only
// metrics (and label values) that the receiver really exports.
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatal(err)
	}
	// What the receiver exports, with every outcome observed once.
	reg := prometheus.NewRegistry()
	m, err := inbox.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	inbox.ObserveForTest(m, "stripe", time.Millisecond)
	// And the async backlog, with one event whose handler has not run.
	pool := pgtest.Pool(t)
	in, _ := inbox.New(nil)
	if _, err := pool.Exec(context.Background(), `INSERT INTO outboxd.inbox_events (source, event_id, expires_at, status, payload)
VALUES ('forms', 'evt_1', now() + interval '1 day', 'received', '\x7b7d')`); err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(inbox.BacklogCollector(pool, in))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				exported[f.GetName()+suffix] = true
			}
		}
	}
	metricName := regexp.MustCompile(`outboxd_[a-z_]+`)
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		// The dispatcher's group is checked against `outboxd serve`'s
		// metrics by cmd/outboxd/alerts_test.go.
		if g.Name != "outboxd-webhooks" {
			continue
		}
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.For != "10m" || (strings.Contains(r.Expr, "rate(") && !strings.Contains(r.Expr, "[10m]")) {
				t.Errorf("%s: want for: 10m, and 10-minute rate windows", r.Alert)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: severity label and summary annotation required", r.Alert)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses", r.Alert)
			}
			names := metricName.FindAllString(r.Expr, -1)
			if len(names) == 0 {
				t.Errorf("%s: no outboxd metric", r.Alert)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("%s: %s is not exported by the receiver", r.Alert, n)
				}
			}
			for _, outcome := range []string{"duplicate", "processed"} {
				if strings.Contains(r.Expr, "outcome") && !strings.Contains(r.Expr, outcome) {
					t.Errorf("%s: expected outcome %q in the ratio", r.Alert, outcome)
				}
			}
		}
	}
	if !alerts["OutboxdWebhookDedupeHitRateHigh"] || !alerts["OutboxdWebhookHandlerP95High"] || !alerts["OutboxdInboxEventsNotProcessed"] {
		t.Fatalf("alerts %v: want the dedupe hit rate, handler p95 and unprocessed async event alarms", alerts)
	}
}
