package storm

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/outboxd/outboxd/inbox/inboxtest"
)

// A provider's event id far over the btree limit (random, so PostgreSQL
// cannot compress it): the inbox keys the event by its hash and the outbox
// stores the welcome email's cause the same way, so the event is processed
// once (2xx twice) instead of refused with 422 (its enqueue failing with
// "index row size exceeds maximum" on every delivery) and lost.
func TestLongEventIDIsProcessedOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	raw := make([]byte, 3000)
	_, _ = rand.Read(raw)
	id := "form_" + hex.EncodeToString(raw)
	req := e.request("forms", leadBody(lead{id: "L09", email: "long@example.com", name: "Long"}), id)
	s := inboxtest.DeliverTwice(t, e.CRM, req, e.state).(crmState)
	if s.Contacts != 1 || s.Tasks != 1 || s.Messages != 1 || s.Sends != 1 {
		t.Fatalf("state %+v: want one contact, task, welcome message and send", s)
	}
	var linked int
	if err := e.Pool.QueryRow(t.Context(), `SELECT count(*) FROM outboxd.outbox_messages m
JOIN outboxd.inbox_events ev ON ev.source = m.caused_by_source AND ev.event_id = m.caused_by_event_id
WHERE ev.original_id = $1`, id).Scan(&linked); err != nil || linked != 1 {
		t.Fatalf("message linked to its event: %d %v", linked, err)
	}
}
