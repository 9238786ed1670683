package worker_test

import (
	"testing"

	"github.com/outboxd/outboxd/worker"
)

// A fresh dispatcher exports every attempt outcome and message status of
// every configured destination at 0: increase() does not count a
// counter's first appearance, so the first dead letter after a start would
// otherwise raise no alert.
func TestMetricsStartAtZero(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg, m := newMetrics(t)
	if _, err := worker.New(b.pool, b.config(t, func(c *worker.Config) { c.Metrics = m; c.DisableRiver = true })); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			key := f.GetName()
			for _, l := range s.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			got[key] = s.GetCounter().GetValue()
		}
	}
	var want []string
	for _, o := range []string{"delivered", "retry", "dead", "pause", "abandoned"} {
		want = append(want, "outboxd_delivery_attempts_total{destination=sink}{outcome="+o+"}")
	}
	for _, s := range []string{"delivered", "retried", "dead"} {
		want = append(want, "outboxd_messages_total{destination=sink}{status="+s+"}")
	}
	for _, k := range want {
		if v, ok := got[k]; !ok || v != 0 {
			t.Errorf("%s: %v, %v; want present at 0 (all: %v)", k, v, ok, got)
		}
	}
}
