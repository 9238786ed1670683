package inbox

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricsCounter exposes one counter to the tests.
func MetricsCounter(m *Metrics, source, outcome string) prometheus.Collector {
	return m.received.WithLabelValues(source, outcome)
}

// ObserveForTest records one processed and one duplicate receipt.
func ObserveForTest(m *Metrics, source string, d time.Duration) {
	m.observe(source, "processed", d)
	m.observe(source, "duplicate", d)
}

// InflightWaiting is how many receipts wait for another of their event.
func InflightWaiting(rc *Receiver) int { return rc.inflight.waiters() }

// ReceiptTimeout is the receiver's ReceiverConfig.Timeout after defaults.
func ReceiptTimeout(rc *Receiver) time.Duration { return rc.cfg.Timeout }

// SourceMaxBody is the body bound a receiver applies to a source.
func SourceMaxBody(rc *Receiver, source string) int64 { return rc.sources[source].MaxBody }

// MaxConcurrent is how many requests a receiver serves at once.
func MaxConcurrent(rc *Receiver) int { return cap(rc.slots) }

// LogEvery is how often a receiver logs one kind of line at most.
func LogEvery(rc *Receiver) time.Duration { return rc.logs.Every }
