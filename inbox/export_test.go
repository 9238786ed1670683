package inbox

import "github.com/prometheus/client_golang/prometheus"

// MetricsCounter exposes one counter to the tests.
func MetricsCounter(m *Metrics, source, outcome string) prometheus.Collector {
	return m.received.WithLabelValues(source, outcome)
}
