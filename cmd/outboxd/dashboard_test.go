package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// dashboardPanel is what the test reads of a Grafana panel.
type dashboardPanel struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // a collapsed row's
}

var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)

// Every panel of deploy/grafana/outboxd.json queries only metrics that
// outboxd exports (taken from the real registries), through the
// dashboard's data source variable, and every outboxd_ metric is on some
// panel.
func TestGrafanaDashboardQueriesExportedMetrics(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../deploy/grafana/outboxd.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string           `json:"uid"`
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&dash); err != nil {
		t.Fatal(err)
	}
	exported, families := exportedMetrics(t)
	used := map[string]bool{}
	check := func(where, expr string) {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for _, n := range names {
			used[n] = true
			if !exported[n] {
				t.Errorf("%s: %s is not a metric outboxd exports (%s)", where, n, expr)
			}
		}
	}
	var walk func([]dashboardPanel)
	queried := 0
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Title == "" || len(p.Targets) == 0 {
				t.Errorf("panel %q (%s): want a title and a query", p.Title, p.Type)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: want the ${datasource} variable as its data source", p.Title)
			}
			for _, q := range p.Targets {
				check("panel "+p.Title, q.Expr)
				queried++
			}
		}
	}
	walk(dash.Panels)
	if queried < 10 {
		t.Fatalf("%d queries in the dashboard: did the file lose its panels?", queried)
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatal(err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: want label_values(metric, label), got %q", v.Name, q.Query)
			continue
		}
		if !exported[m[1]] {
			t.Errorf("variable %s: %s is not a metric outboxd exports", v.Name, m[1])
		}
	}
	for _, f := range families {
		if strings.HasPrefix(f, "outboxd_") && !used[f] && !used[f+"_bucket"] {
			t.Errorf("no panel shows %s", f)
		}
	}
}
