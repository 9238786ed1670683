package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/console"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// The numbers docs/operations.md promises: lists show the newest 100 rows,
// a page shows the first 64 KiB of a payload, an audit row keeps the first
// 10,000 message ids (AuditIDs here is lowered to 2 to show the cap; its
// default is asserted in TestDefaultAuditIDs).
func TestDocumentedLimits(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := context.Background()
	c, err := console.New(pool, &console.Config{InsecureNoAuth: true, AuditIDs: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	_, err = pool.Exec(ctx, `
INSERT INTO outboxd.inbox_events (source, event_id, expires_at, payload)
SELECT 'bulk', 'e' || i, now() + interval '1 day', '{}' FROM generate_series(1, 101) i;
INSERT INTO outboxd.inbox_events (source, event_id, expires_at, payload)
VALUES ('big', 'huge', now() + interval '1 day', convert_to('"' || repeat('x', 70000) || '"', 'UTF8'));
INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, status)
SELECT gen_random_uuid(), 'd', '{}', 'k' || i, 'dead' FROM generate_series(1, 3) i;
INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, status)
SELECT gen_random_uuid(), 'bulk', '{}', 'k' || i, 'delivered' FROM generate_series(1, 101) i`)
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{pool: pool, srv: srv}
	events := decode[struct {
		Events []any `json:"events"`
		Limit  int   `json:"limit"`
	}](t, b.do(t, http.MethodGet, "/api/events?source=bulk", "", nil, nil))
	if len(events.Events) != 100 || events.Limit != 100 {
		t.Fatalf("a list of 101 matches shows %d (limit %d), want 100", len(events.Events), events.Limit)
	}
	// The "Older" link continues after the last row shown, even though
	// all 101 rows share one received_at (one transaction's now()).
	for _, path := range []string{"/events?source=bulk", "/messages?destination=bulk"} {
		first := b.do(t, http.MethodGet, path, "", nil, nil)
		_, link, ok := strings.Cut(first.body, `id="older" href="`)
		if !ok {
			t.Fatalf("%s: no Older link", path)
		}
		link, _, _ = strings.Cut(link, `"`)
		next := b.do(t, http.MethodGet, strings.ReplaceAll(link, "&amp;", "&"), "", nil, nil)
		// A result row opens with "<tr>" and a newline; headers and "none" rows do not.
		rows := strings.Count(first.body, "<tr>\n") + strings.Count(next.body, "<tr>\n")
		if strings.Contains(next.body, `id="older"`) || rows != 101 {
			t.Fatalf("%s: %d rows over two pages, want 101 (next page %s)", path, rows, link)
		}
	}
	page := b.do(t, http.MethodGet, "/events/big/huge", "", nil, nil)
	_, shown, _ := strings.Cut(page.body, `<pre id="payload">`)
	shown, _, _ = strings.Cut(shown, "</pre>")
	if !strings.Contains(page.body, "70002 bytes, the start shown") || len(strings.ReplaceAll(shown, "&#34;", `"`)) != 64<<10 {
		t.Fatalf("a 70 KB payload: %d bytes shown, want 64 KiB", len(strings.ReplaceAll(shown, "&#34;", `"`)))
	}
	if dead := b.do(t, http.MethodGet, "/dead", "", nil, nil); !strings.Contains(dead.body, "the ids of the first 2:") {
		t.Fatalf("the dead-letter page does not state the audit's id cap:\n%s", dead.body)
	}
	token := b.csrf(t, "")
	res := decode[map[string]any](t, b.do(t, http.MethodPost, "/api/dead/requeue", "", strings.NewReader(`{"all":true}`), map[string]string{"X-CSRF-Token": token}))
	if res["count"] != 3.0 {
		t.Fatalf("requeue: %v", res)
	}
	var n int64
	var ids []uuid.UUID
	if err := pool.QueryRow(ctx, `SELECT count, message_ids FROM outboxd.console_audit`).Scan(&n, &ids); err != nil || n != 3 || len(ids) != 2 {
		t.Fatalf("audit: count %d, %d ids, %v; want 3 and 2", n, len(ids), err)
	}
}
