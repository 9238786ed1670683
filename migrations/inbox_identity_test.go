package migrations_test

import (
	"context"
	"testing"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/migrations"
)

// 00007 scrubs the secrets older rows stored among their headers, and
// leaves their occurred_at as written (it cannot tell a signing time from a
// caller's event time).
func TestInboxIdentityMigratesOldRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.SQLDB(t, pgtest.EmptyURL(t))
	m, err := migrations.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Down(ctx); err != nil {
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
	if err := db.QueryRow(`SELECT occurred_at, signed_at, headers::text FROM outboxd.inbox_events`).Scan(&occurred, &signed, &headers); err != nil {
		t.Fatal(err)
	}
	if occurred == nil || signed != nil || headers != `{"Content-Type": ["application/json"]}` {
		t.Fatalf("occurred_at %v, signed_at %v, headers %s", occurred, signed, headers)
	}
}
