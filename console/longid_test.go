package console_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/eventkey"
	"github.com/outboxd/outboxd/outbox"
)

// An event with a long id (the inbox keys it by its hash) and the message
// it caused (the outbox stores the same hash) link each other both ways,
// and a message stored by an earlier version with the long id as given
// (it fit under the btree limit) is still found from the event.
func TestLongEventIDLinksItsMessages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	raw := make([]byte, 2000)
	_, _ = rand.Read(raw)
	long := "evt_" + hex.EncodeToString(raw)
	var msgID string
	for range 2 { // a sender's retry
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			res, err := b.in.Record(ctx, tx, inbox.Event{Source: "forms", ID: long, Type: "lead.created", Payload: []byte(`{}`)})
			if err != nil || !res.New {
				return err
			}
			e, err := b.out.Enqueue(ctx, tx, outbox.Message{Destination: "email-api", Type: "email.welcome",
				CausedBy: &outbox.EventRef{Source: "forms", EventID: long}})
			msgID = e.ID.String()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// What an earlier version wrote: the id as given (300 bytes fit).
	older := long[:300]
	if _, err := b.in.Record(ctx, b.pool, inbox.Event{Source: "forms", ID: older, Type: "lead.created", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	var olderMsg string
	if err := b.pool.QueryRow(ctx, `INSERT INTO outboxd.outbox_messages (id, destination, type, payload, idempotency_key, caused_by_source, caused_by_event_id)
VALUES (gen_random_uuid(), 'email-api', 'email.welcome', '\x7b7d', 'older', 'forms', $1) RETURNING id::text`, older).Scan(&olderMsg); err != nil {
		t.Fatal(err)
	}

	auth := "basic:vic:" + viewerPass
	type detail struct {
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
	}
	for id, want := range map[string]string{long: msgID, older: olderMsg} {
		d := decode[detail](t, b.do(t, http.MethodGet, "/api/events/forms/"+url.PathEscape(id), auth, nil, nil))
		if len(d.Messages) != 1 || d.Messages[0].ID != want {
			t.Errorf("event of %d bytes lists %+v; want message %s", len(id), d.Messages, want)
		}
	}
	// Reached by the stored key (the message page's link), the event page
	// still lists what an earlier version stored under the id as given.
	d := decode[detail](t, b.do(t, http.MethodGet, "/api/events/forms/"+url.PathEscape(eventkey.Storage(older)), auth, nil, nil))
	if len(d.Messages) != 1 || d.Messages[0].ID != olderMsg {
		t.Errorf("event by its stored key lists %+v; want message %s", d.Messages, olderMsg)
	}
	// Searching by the id the provider shows finds the event.
	type found struct {
		Events []struct {
			ID string `json:"id"`
		} `json:"events"`
	}
	// An inbox row from before migration 7 holds a long id as given.
	legacy := long[:250]
	if _, err := b.pool.Exec(ctx, `INSERT INTO outboxd.inbox_events (source, event_id, expires_at, payload) VALUES ('forms', $1, now() + interval '1 day', '\x7b7d')`, legacy); err != nil {
		t.Fatal(err)
	}
	// ...and its page opens.
	if r := b.do(t, http.MethodGet, "/api/events/forms/"+url.PathEscape(legacy), auth, nil, nil); r.code != http.StatusOK || !strings.Contains(r.body, legacy) {
		t.Errorf("the pre-migration-7 event's page: %d", r.code)
	}
	for _, id := range []string{long, older, eventkey.Storage(long), legacy} {
		f := decode[found](t, b.do(t, http.MethodGet, "/api/events?q="+url.QueryEscape(id), auth, nil, nil))
		if len(f.Events) != 1 || (f.Events[0].ID != long && f.Events[0].ID != older && f.Events[0].ID != legacy) {
			t.Errorf("search by an id of %d bytes: %+v", len(id), f.Events)
		}
	}
	page := b.do(t, http.MethodGet, "/messages/"+msgID, auth, nil, nil).body
	i := strings.Index(page, `href="/events/forms/sha256:`)
	if i < 0 {
		t.Fatalf("message page does not link its event by the stored key:\n%s", page)
	}
	link := page[i+len(`href="`):]
	link = link[:strings.IndexByte(link, '"')]
	if r := b.do(t, http.MethodGet, link, auth, nil, nil); r.code != http.StatusOK || !strings.Contains(r.body, msgID) {
		t.Errorf("%s: %d; want the event's page listing %s", link, r.code, msgID)
	}
}
