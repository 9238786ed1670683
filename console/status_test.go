package console_test

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/console"
	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/outbox"
)

// The typed status fields keep the API's strings (docs/operations.md): the
// JSON says "dead", "processed" and "dead" as before, and decodes into the
// typed rows as their constants.
func TestAPIStatusesAreTheTypedConstants(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.receive(t, "evt-typed", "typed@example.com")
	b.kill(t, id)
	auth := "basic:vic:" + viewerPass

	r := b.do(t, http.MethodGet, "/api/messages?status=dead", auth, nil, nil)
	if !strings.Contains(r.body, `"status": "dead"`) {
		t.Fatalf("messages JSON lacks \"status\":\"dead\": %s", r.body)
	}
	msgs := decode[struct{ Messages []console.MessageRow }](t, r)
	if len(msgs.Messages) != 1 || msgs.Messages[0].Status != console.MessageStatusDead {
		t.Fatalf("messages %+v, want one %q", msgs.Messages, console.MessageStatusDead)
	}

	evs := decode[struct{ Events []console.EventRow }](t, b.do(t, http.MethodGet, "/api/events?status=processed", auth, nil, nil))
	if len(evs.Events) != 1 || evs.Events[0].Status != inbox.StatusProcessed {
		t.Fatalf("events %+v, want one %q", evs.Events, inbox.StatusProcessed)
	}

	detail := decode[struct {
		Attempts []struct {
			Outcome outbox.Outcome `json:"outcome"`
		} `json:"attempts"`
	}](t, b.do(t, http.MethodGet, "/api/messages/"+id.String(), auth, nil, nil))
	if len(detail.Attempts) != 1 || detail.Attempts[0].Outcome != outbox.OutcomeDead {
		t.Fatalf("attempts %+v, want one %q", detail.Attempts, outbox.OutcomeDead)
	}
	if r := b.do(t, http.MethodGet, "/api/messages?status=bogus", auth, nil, nil); r.code != http.StatusBadRequest {
		t.Fatalf("status=bogus: %d, want 400", r.code)
	}
}

// The Action constants are the audit table's actions, and an audit row
// of the API decodes into AuditEntry's typed Role and Action.
func TestAuditActionsAreTyped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var def string
	err := b.pool.QueryRow(t.Context(), `SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'outboxd.console_audit'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%action%'`).Scan(&def)
	if err != nil {
		t.Fatal(err)
	}
	var inSchema []string
	for _, m := range regexp.MustCompile(`'([a-z]+)'::text`).FindAllStringSubmatch(def, -1) {
		inSchema = append(inSchema, m[1])
	}
	ours := []string{string(console.ActionRequeue), string(console.ActionPurge), string(console.ActionPause), string(console.ActionResume)}
	slices.Sort(inSchema)
	slices.Sort(ours)
	if !slices.Equal(inSchema, ours) {
		t.Fatalf("schema's actions %v (%s), constants %v", inSchema, def, ours)
	}

	bot := "bearer:" + adminToken
	if r := b.do(t, http.MethodPost, "/api/destinations/email-api/pause", bot, strings.NewReader(`{"reason":"typed"}`), nil); r.code != http.StatusOK {
		t.Fatalf("pause: %d %s", r.code, r.body)
	}
	audit := decode[struct{ Audit []console.AuditEntry }](t, b.do(t, http.MethodGet, "/api/audit", bot, nil, nil))
	if len(audit.Audit) != 1 || audit.Audit[0].Action != console.ActionPause || audit.Audit[0].Role != console.Admin {
		t.Fatalf("audit %+v, want one pause by an admin", audit.Audit)
	}
}
