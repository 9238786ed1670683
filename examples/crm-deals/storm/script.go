package storm

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
)

// t0 anchors the events' own times; the signing times are real (now).
var t0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

// tally counts the answers per source.
type tally struct {
	mu        sync.Mutex
	bySource  map[string]map[string]int
	latencies []time.Duration
}

func newTally() *tally { return &tally{bySource: map[string]map[string]int{}} }

func (t *tally) add(source string, r response) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bySource[source] == nil {
		t.bySource[source] = map[string]int{}
	}
	kind := outcome(r)
	t.bySource[source][kind]++
	t.bySource[source]["received"]++
	if kind == "new" || kind == "duplicate" {
		t.latencies = append(t.latencies, r.latency)
	}
}

func outcome(r response) string {
	switch {
	case r.code == 200 && strings.Contains(r.body, `"duplicate"`):
		return "duplicate"
	case r.code == 200:
		return "new"
	case r.code >= 400 && r.code < 500:
		return "rejected"
	default:
		return "failed"
	}
}

// model is what the script expects the CRM to end with, built as it plays.
type model struct {
	emails map[string]bool   // distinct contacts
	stages map[string]string // deal id -> final stage
	chats  int               // sales-chat messages expected
}

type lead struct {
	id, email, name string
	amount          int64
}

func leadBody(l lead) []byte {
	b, _ := json.Marshal(map[string]any{
		"type": "lead.created", "timestamp": t0,
		"data": map[string]any{"lead_id": l.id, "email": l.email, "name": l.name, "phone": "+1555010" + l.id[len(l.id)-2:],
			"deal_title": "Plan for " + l.name, "amount": l.amount},
	})
	return b
}

func paymentBody(dealID string, at time.Time, amount int64) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": "evt_pay_" + dealID, "type": "payment_intent.succeeded", "created": at.Unix(),
		"data": map[string]any{"object": map[string]any{"id": "pi_" + dealID, "amount": amount, "metadata": map[string]string{"deal_id": dealID}}},
	})
	return b
}

func calendarBody(kind, dealID string, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"event_id": fmt.Sprintf("cal_%s_%s", kind, dealID), "kind": kind, "deal_id": dealID,
		"occurred_at": at, "summary": kind + " with the customer",
	})
	return b
}
