package migrations_test

import (
	"context"
	"testing"
)

// Migrations 7 to 9 scrub the secrets older rows stored among their headers
// (in batches), and leave their occurred_at as written (a signing time
// cannot be told from a caller's event time).
func TestInboxIdentityMigratesOldRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, m := upFresh(t)
	if _, err := m.DownTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	// More rows than one batch of the scrub, each with a secret header.
	if _, err := db.Exec(`INSERT INTO outboxd.inbox_events (source, event_id, expires_at, payload, headers)
		SELECT 'github', 'd-' || i, now() + interval '1 day', '', '{"X-Hub-Signature-256": ["sha256=ab"]}'
		FROM generate_series(1, 2500) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO outboxd.inbox_events (source, event_id, occurred_at, expires_at, payload, headers)
		VALUES ('stripe', 'evt_1', to_timestamp(1795928597), now() + interval '1 day', '',
		        '{"Stripe-Signature": ["t=1,v1=ab"], "X-Api-Token": ["t"], "Content-Type": ["application/json"]}')`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	var occurred, signed any
	var headers string
	var left int
	if err := db.QueryRow(`SELECT count(*) FROM outboxd.inbox_events WHERE headers <> '{}' AND source = 'github'`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d rows keep a signature header, %v", left, err)
	}
	if err := db.QueryRow(`SELECT occurred_at, signed_at, headers::text FROM outboxd.inbox_events WHERE source = 'stripe'`).Scan(&occurred, &signed, &headers); err != nil {
		t.Fatal(err)
	}
	if occurred == nil || signed != nil || headers != `{"Content-Type": ["application/json"]}` {
		t.Fatalf("occurred_at %v, signed_at %v, headers %s", occurred, signed, headers)
	}
}
