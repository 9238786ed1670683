package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/outboxd/outboxd/dispatch"
)

const alertsDir = "../../deploy/prometheus"

// promtool finds Debian's promtool (package prometheus), which `make
// promtool` installs: without it the rules are unchecked, so the test
// fails rather than skips.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run `make promtool` (apt-get install --no-install-recommends prometheus), " +
			"which deploy/prometheus/alerts.yml's checks need")
	}
	return path
}

// promtool accepts the rules, and its unit tests (alerts_test.yml) pass:
// each alert fires on the series that should raise it and not on healthy
// ones.
func TestAlertRulesPromtool(t *testing.T) {
	t.Parallel()
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = alertsDir
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Every metric an alert names is one outboxd exports, and the dispatcher's
// alerts of issue 11 are there.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(alertsDir + "/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	exported, _ := exportedMetrics(t)
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			names := metricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("%s: no metric in %q", r.Alert, r.Expr)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("%s: %s is not a metric outboxd exports", r.Alert, n)
				}
			}
			// The dispatcher's label values are the ones it writes.
			for _, m := range dispatcherLabel.FindAllStringSubmatch(r.Expr, -1) {
				for _, v := range strings.Split(m[2], "|") {
					if !dispatcherValues[m[1]][v] {
						t.Errorf("%s: %s=%q is never exported", r.Alert, m[1], v)
					}
				}
			}
		}
	}
	for _, want := range []string{"OutboxdBacklogOld", "OutboxdDeadLettersRising", "OutboxdDestinationPaused",
		"OutboxdNoLiveDispatcher", "OutboxdDispatcherAbsent", "OutboxdDeliveryErrorRateHigh", "OutboxdDatabaseUnreachable"} {
		if !alerts[want] {
			t.Errorf("alerts.yml lacks %s", want)
		}
	}
}

var dispatcherLabel = regexp.MustCompile(`\b(status|outcome)=~?"([^"]+)"`)

// dispatcherValues are the values worker.Metrics gives its labels; the
// receiver's outcomes are checked by inbox/alerts_test.go.
var dispatcherValues = map[string]map[string]bool{
	"outcome": {string(dispatch.Delivered): true, string(dispatch.Retry): true, string(dispatch.Dead): true, string(dispatch.Pause): true,
		"abandoned": true, "duplicate": true, "processed": true, "accepted": true, "failed": true, "panic": true},
	"status": {"delivered": true, "retried": true, "dead": true},
}
