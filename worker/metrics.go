package worker

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/dispatch"
)

// Metrics are the dispatcher's Prometheus metrics. Create them with
// NewMetrics and pass them in Config.Metrics; a nil *Metrics records
// nothing. New creates the attempt and message counters of each
// configured destination at 0, so the first ones after a start count in
// increase() and rate().
type Metrics struct {
	attempts        *prometheus.CounterVec
	outcomes        *prometheus.CounterVec
	attemptSeconds  *prometheus.HistogramVec
	deliverySeconds *prometheus.HistogramVec
	unserved        *prometheus.GaugeVec
	claimSeconds    *prometheus.HistogramVec
	walks           *prometheus.CounterVec
	idleProbes      *prometheus.CounterVec
	probeFailing    prometheus.Gauge
	dbErrors        *prometheus.CounterVec
	refused         *refusedGauge
}

// NewMetrics registers the dispatcher's metrics with reg.
//
//	outboxd_delivery_attempts_total{destination,outcome}  attempts by result
//	outboxd_messages_total{destination,status}            messages that became delivered, retry (pending) or dead
//	outboxd_attempt_duration_seconds{destination}         one attempt
//	outboxd_commit_to_delivery_seconds{destination}       enqueue to successful delivery
//	outboxd_unserved_pending_messages{destination}        pending messages of a destination no live dispatcher serves (0 once one does)
//	outboxd_claim_duration_seconds{destination}           one claim of a lane's next batch (the query and its rows)
//	outboxd_claim_walks_total{destination}                claims that walked the heads of their lane's keys (the others read only due retries)
//	outboxd_idle_lane_probes_total{destination}           looks at a parked (idle) lane, in place of a claim on its sweep
//	outboxd_listen_probe_failing                          1 while the listening connection's last probe did not come back within 10 s
//	outboxd_database_errors_total{operation,cause}        failed database operations: privilege, schema or other
//	outboxd_database_refused{operation}                   1 while a started dispatcher's role is refused a privilege the operation needs (Dispatcher.Refused)
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxd_delivery_attempts_total", Help: "Delivery attempts by destination and outcome (delivered, retry, dead, pause, abandoned).",
		}, []string{"destination", "outcome"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxd_messages_total", Help: "Recorded attempt results by destination and the message's new status: delivered, retried, dead.",
		}, []string{"destination", "status"}),
		attemptSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "outboxd_attempt_duration_seconds", Help: "Duration of one delivery attempt.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"destination"}),
		deliverySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "outboxd_commit_to_delivery_seconds", Help: "Time from enqueue to successful delivery.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 20),
		}, []string{"destination"}),
		unserved: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "outboxd_unserved_pending_messages", Help: "Pending messages of a destination that no live dispatcher serves (they wait, never dead-lettered).",
		}, []string{"destination"}),
		// Claims should cost the same whatever the backlog behind them; this
		// shows it in production (and is what bench-backlog reads).
		claimSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "outboxd_claim_duration_seconds", Help: "Duration of one claim of a lane's next batch, rows read included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"destination"}),
		// With claimSeconds, what the walks over many keys cost: a lane whose
		// walk is slow walks less often (worker/walk.go).
		walks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxd_claim_walks_total", Help: "Claims that walked the heads of every ordering key of their lane; the other claims read only due retries and the keys just recorded.",
		}, []string{"destination"}),
		// An idle dispatcher's sweeps no longer show as claims (idle.go):
		// this shows it still looks.
		idleProbes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxd_idle_lane_probes_total", Help: "Looks at a parked lane (its last walk found nothing) by the idle probe, one statement a sweep for all of them, in place of a claim on the lane's sweep.",
		}, []string{"destination"}),
		// The log line of listenprobe.go scrolls away; an alert does not.
		probeFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outboxd_listen_probe_failing", Help: "1 while the listening connection's last probe (a NOTIFY sent from the pool) did not come back within 10 s: commits wake nothing (a pooler in transaction mode?); 0 once one does, or the connection ends.",
		}),
		// The log says an outage once; an alert needs a series. A failed
		// claim is counted here, not in claimSeconds.
		dbErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxd_database_errors_total", Help: "Failed database operations of the dispatcher, by operation and cause: privilege (the role lacks a grant), schema (not migrated, or migrated down), other (the database away, a timeout, ...).",
		}, []string{"operation", "cause"}),
		refused: &refusedGauge{desc: prometheus.NewDesc("outboxd_database_refused",
			"1 while the database refuses a started dispatcher's role a privilege that the operation needs, as /readyz says (not since succeeded, last refused within 30 s or three of the operation's intervals).",
			[]string{"operation"}, nil), by: map[*Dispatcher]bool{}},
	}
	for _, c := range []prometheus.Collector{m.attempts, m.outcomes, m.attemptSeconds, m.deliverySeconds, m.unserved, m.claimSeconds, m.walks, m.idleProbes, m.probeFailing, m.dbErrors, m.refused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// metricOutcomes and metricStatuses are the values of the outcome and
// status labels.
var (
	metricOutcomes = []string{string(dispatch.Delivered), string(dispatch.Retry), string(dispatch.Dead), string(dispatch.Pause), abandonedOutcome}
	metricStatuses = []string{"delivered", "retried", "dead"}
)

// bind creates the counters of each destination at 0. increase() and
// rate() do not count a series' first appearance: without this the first
// dead letters after a start would raise no alert.
func (m *Metrics) bind(destinations []string) {
	if m == nil {
		return
	}
	for _, dest := range destinations {
		for _, o := range metricOutcomes {
			m.attempts.WithLabelValues(dest, o)
		}
		for _, s := range metricStatuses {
			m.outcomes.WithLabelValues(dest, s)
		}
		m.walks.WithLabelValues(dest)
		m.idleProbes.WithLabelValues(dest)
	}
	for _, op := range healthOps {
		for _, cause := range errorCauses {
			m.dbErrors.WithLabelValues(op.label, cause)
		}
	}
}

var errorCauses = []string{"privilege", "schema", "other"}

// databaseError counts a failed database operation (none for a nil err).
func (m *Metrics) databaseError(op healthOp, err error) {
	if m == nil || err == nil {
		return
	}
	cause := "other"
	switch {
	case isPrivilegeError(err):
		cause = "privilege"
	case isSchemaError(err):
		cause = "schema"
	}
	m.dbErrors.WithLabelValues(op.label, cause).Inc()
}

// refusedGauge is outboxd_database_refused: read from the started
// dispatchers that share these Metrics at each scrape, so that it says
// what Ready says, the refusals that age out included.
type refusedGauge struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	by   map[*Dispatcher]bool
}

func (g *refusedGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *refusedGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	refused := map[healthOp]bool{}
	for d := range g.by {
		for _, op := range d.health.refusedOps() {
			refused[op] = true
		}
	}
	g.mu.Unlock()
	for _, op := range healthOps {
		v := 0.0
		if refused[op] {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v, op.label)
	}
}

// watchRefused adds a started dispatcher to outboxd_database_refused,
// unwatchRefused takes a stopped one out.
func (m *Metrics) watchRefused(d *Dispatcher) {
	if m == nil {
		return
	}
	m.refused.mu.Lock()
	defer m.refused.mu.Unlock()
	m.refused.by[d] = true
}

func (m *Metrics) unwatchRefused(d *Dispatcher) {
	if m == nil {
		return
	}
	m.refused.mu.Lock()
	defer m.refused.mu.Unlock()
	delete(m.refused.by, d)
}

// probedIdle counts a round's looks at parked lanes.
func (m *Metrics) probedIdle(lanes []Lane) {
	if m == nil {
		return
	}
	for _, l := range lanes {
		m.idleProbes.WithLabelValues(l.Destination).Inc()
	}
}

func (m *Metrics) observe(r result) {
	if m == nil {
		return
	}
	dest := r.msg.Destination
	m.attemptSeconds.WithLabelValues(dest).Observe(r.duration.Seconds())
	if r.res.Outcome == dispatch.Delivered {
		m.deliverySeconds.WithLabelValues(dest).Observe(time.Since(r.msg.CreatedAt).Seconds())
	}
}

func (m *Metrics) claimed(dest string, took time.Duration, walked bool) {
	if m == nil {
		return
	}
	m.claimSeconds.WithLabelValues(dest).Observe(took.Seconds())
	if walked {
		m.walks.WithLabelValues(dest).Inc()
	}
}

// attempted counts an attempt under the outcome its row records (record):
// the retry that used up a message's retries is dead there.
func (m *Metrics) attempted(dest, outcome string) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(dest, outcome).Inc()
}

func (m *Metrics) recorded(r result, status string) {
	if m == nil {
		return
	}
	if status == "pending" {
		status = "retried"
	}
	m.outcomes.WithLabelValues(r.msg.Destination, status).Inc()
}

// setUnserved replaces the unserved gauges: a destination served again
// reads 0 rather than vanishing, so an alert on it resolves and a graph
// shows the drop.
func (m *Metrics) setUnserved(prev, now map[string]Backlog) {
	if m == nil {
		return
	}
	for name := range prev {
		if _, still := now[name]; !still {
			m.unserved.WithLabelValues(name).Set(0)
		}
	}
	for name, b := range now {
		m.unserved.WithLabelValues(name).Set(float64(b.Pending))
	}
}

// listenProbe records whether the listening connection's last probe
// failed (listenprobe.go).
func (m *Metrics) listenProbe(failing bool) {
	if m == nil {
		return
	}
	v := 0.0
	if failing {
		v = 1
	}
	m.probeFailing.Set(v)
}
