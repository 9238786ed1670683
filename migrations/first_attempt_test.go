package migrations_test

import (
	"context"
	"testing"
)

// Migration 13 records first-try successes on the message row; going back
// down turns each into the attempt row it would have been, so no attempt
// is lost either way, and up again finds the log view back.
func TestFirstAttemptMigrationDownKeepsEveryAttempt(t *testing.T) {
	t.Parallel()
	db, m := upFresh(t)
	ctx := context.Background()
	if _, err := db.Exec(`
INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, status, attempts,
        last_status_code, last_error, delivered_at, first_attempt_at, first_attempt_ms, first_attempt_body, first_attempt_by)
VALUES ('0193a4c2-0000-7000-8000-000000000001', 'crm', '\x00', 'k1', 'delivered', 1,
        201, 'queued downstream', now(), now() - interval '5 ms', 4.5, 'ok', 'd-1'),
       ('0193a4c2-0000-7000-8000-000000000002', 'crm', '\x00', 'k2', 'delivered', 1,
        200, '', now(), now() - interval '5 ms', 3, NULL, 'd-1')`); err != nil {
		t.Fatal(err)
	}
	log := func(table string) string {
		t.Helper()
		var s string
		if err := db.QueryRow(`SELECT string_agg(concat_ws(' ', message_id, attempt, duration_ms, outcome, status_code,
		        quote_literal(error), quote_literal(response_body), dispatcher), E'\n' ORDER BY message_id)
		FROM outboxd.` + table).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := log("outbox_attempt_log")
	if _, err := m.DownTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	if after := log("outbox_attempts"); after != before {
		t.Fatalf("attempt rows after going down:\n%s\nwant the log as it was:\n%s", after, before)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if again := log("outbox_attempt_log"); again != before {
		t.Fatalf("log after up again:\n%s\nwant:\n%s", again, before)
	}
}
