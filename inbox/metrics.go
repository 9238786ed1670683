package inbox

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the receiver's Prometheus metrics; a nil *Metrics records
// nothing.
//
//	outboxd_webhooks_total{source,outcome}          every request: processed (new), accepted (new,
//	                                                async), duplicate, rejected, failed, panic,
//	                                                bad_signature, too_large, unreadable (a body cut
//	                                                off or read past ReadTimeout), wrong_method, overloaded, and
//	                                                unknown_source (with source="unknown": the
//	                                                path is the caller's, its label would not be bounded)
//	outboxd_webhook_handler_duration_seconds{source,outcome}  the receipt transaction of verified events
//
// The dedupe hit rate is duplicate / (processed + accepted + duplicate); the alert
// rules in deploy/prometheus/alerts.yml compute it over 10 minutes.
type Metrics struct {
	received *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the receiver's metrics with reg (for example
// prometheus.DefaultRegisterer).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxd_webhooks_total", Help: "Webhook requests by source and outcome.",
		}, []string{"source", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "outboxd_webhook_handler_duration_seconds", Help: "Receipt transaction (inbox record + handler + commit) of verified webhooks.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"source", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.received, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) count(source, outcome string) {
	if m != nil {
		m.received.WithLabelValues(source, outcome).Inc()
	}
}

// observe counts a verified request's outcome (processed, duplicate) and
// its duration; failures are counted where they are recorded.
func (m *Metrics) observe(source, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	if outcome == "processed" || outcome == "duplicate" || outcome == "accepted" {
		m.received.WithLabelValues(source, outcome).Inc()
	}
	m.duration.WithLabelValues(source, outcome).Observe(d.Seconds())
}

// observeAsync times an async job that committed; requests were counted
// at receipt ("accepted"), so jobs are not counted again.
func (m *Metrics) observeAsync(source, status string, err error, d time.Duration) {
	if m == nil || err != nil {
		return
	}
	m.duration.WithLabelValues(source, "async_"+status).Observe(d.Seconds())
}
