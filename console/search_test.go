package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/outboxd/outboxd/outbox"
)

func TestSearchEventsByIdAndAnyReference(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.receive(t, "evt-ada", "ada@example.com")
	b.receive(t, "evt-bob", "bob@example.com")
	auth := "basic:vic:" + viewerPass
	type events struct {
		Events []struct {
			ID             string `json:"id"`
			DuplicateCount int    `json:"duplicate_count"`
		} `json:"events"`
	}
	for q, want := range map[string]string{
		"ada@example.com":       "evt-ada", // a reference's value, whatever its name
		"ADA@example.com":       "evt-ada", // typed with capitals: the lower-cased value matches
		"email=ada@example.com": "evt-ada", // one reference by name
		"contact_id=c-evt-bob":  "evt-bob",
		"evt-bob":               "evt-bob", // an event id, without its source
		"nobody@example.com":    "",
		"phone=ada@example.com": "",
	} {
		got := decode[events](t, b.do(t, http.MethodGet, "/api/events?q="+url.QueryEscape(q), auth, nil, nil))
		switch {
		case want == "" && len(got.Events) != 0:
			t.Errorf("q=%s: %+v, want none", q, got.Events)
		case want != "" && (len(got.Events) != 1 || got.Events[0].ID != want):
			t.Errorf("q=%s: %+v, want %s", q, got.Events, want)
		case want != "" && got.Events[0].DuplicateCount != 1:
			t.Errorf("q=%s: duplicate count %d, want 1 (each event was delivered twice)", q, got.Events[0].DuplicateCount)
		}
	}
	// The page finds the same, and links the event.
	r := b.do(t, http.MethodGet, "/events?q=ada%40example.com", auth, nil, nil)
	if r.code != 200 || !strings.Contains(r.body, `href="/events/forms/evt-ada"`) || strings.Contains(r.body, "evt-bob") {
		t.Fatalf("events page: %d\n%s", r.code, r.body)
	}
	// Filters: status, source, time range.
	for query, n := range map[string]int{"status=processed": 2, "status=rejected": 0, "source=forms": 2, "source=stripe": 0,
		"since=1h": 2, "until=1h": 0, "since=2020-01-01": 2} {
		if got := decode[events](t, b.do(t, http.MethodGet, "/api/events?"+query, auth, nil, nil)); len(got.Events) != n {
			t.Errorf("%s: %d events, want %d", query, len(got.Events), n)
		}
	}
	if r := b.do(t, http.MethodGet, "/api/events?since=yesterday", auth, nil, nil); r.code != http.StatusBadRequest || !strings.Contains(r.body, "since") {
		t.Errorf("bad since: %d %s", r.code, r.body)
	}
}

func TestEventAndMessagePagesLinkEachOther(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.receive(t, "evt-link", "link@example.com")
	auth := "basic:vic:" + viewerPass
	r := b.do(t, http.MethodGet, "/events/forms/evt-link", auth, nil, nil)
	for _, want := range []string{`href="/messages/` + id.String() + `"`, "email.welcome", "&#34;email&#34;: &#34;link@example.com&#34;", "Duplicates</dt><dd>1, the last at"} {
		if !strings.Contains(r.body, want) {
			t.Fatalf("event page lacks %q:\n%s", want, r.body)
		}
	}
	b.kill(t, id)
	r = b.do(t, http.MethodGet, "/messages/"+id.String(), auth, nil, nil)
	for _, want := range []string{`href="/events/forms/evt-link"`, "HTTP 422", "bad template", "12.5 ms", "[redacted]", `id="status">dead`} {
		if !strings.Contains(r.body, want) {
			t.Fatalf("message page lacks %q:\n%s", want, r.body)
		}
	}
	if strings.Contains(r.body, `id="requeue"`) {
		t.Fatal("a viewer is offered the requeue button")
	}
	if r := b.do(t, http.MethodGet, "/messages/"+id.String(), "basic:ada:"+adminPass, nil, nil); !strings.Contains(r.body, `id="requeue"`) {
		t.Fatal("an admin is not offered the requeue button on a dead letter")
	}
	// Messages filters, by each field the page offers.
	type msgs struct {
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
	}
	for query, n := range map[string]int{"status=dead": 1, "status=pending": 0, "status=retrying": 0, "destination=email-api": 1,
		"destination=chat": 0, "ordering_key=contact-evt-link": 1, "type=email.welcome": 1, "since=1h": 1, "until=1h": 0} {
		if got := decode[msgs](t, b.do(t, http.MethodGet, "/api/messages?"+query, auth, nil, nil)); len(got.Messages) != n {
			t.Errorf("%s: %d messages, want %d", query, len(got.Messages), n)
		}
	}
	var key string
	if err := b.pool.QueryRow(t.Context(), `SELECT idempotency_key FROM outboxd.outbox_messages WHERE id = $1`, id).Scan(&key); err != nil {
		t.Fatal(err)
	}
	if got := decode[msgs](t, b.do(t, http.MethodGet, "/api/messages?idempotency_key="+url.QueryEscape(key), auth, nil, nil)); len(got.Messages) != 1 {
		t.Errorf("by idempotency key: %+v", got)
	}
	// A key Enqueue made, the message's own id (migration 15: found
	// through the primary key, not the unique index of given keys).
	ob, err := outbox.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	own, err := ob.Enqueue(t.Context(), b.pool, outbox.Message{Destination: "email-api", Payload: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	for query, n := range map[string]int{"": 1, "&destination=email-api": 1, "&destination=chat": 0} {
		got := decode[msgs](t, b.do(t, http.MethodGet, "/api/messages?idempotency_key="+own.IdempotencyKey+query, auth, nil, nil))
		if len(got.Messages) != n || n == 1 && got.Messages[0].ID != own.ID.String() {
			t.Errorf("by a key that is the message's id%s: %+v, want %d (%s)", query, got, n, own.ID)
		}
	}
	for _, path := range []string{"/events/forms/nope", "/messages/0190a8c2-0000-7000-8000-000000000000", "/api/messages/0190a8c2-0000-7000-8000-000000000000"} {
		if r := b.do(t, http.MethodGet, path, auth, nil, nil); r.code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, r.code)
		}
	}
	for _, path := range []string{"/destinations", "/failures", "/dead", "/api/failures", "/api/audit", "/api/dead", "/api/destinations", "/api/events/forms/evt-link"} {
		if r := b.do(t, http.MethodGet, path, auth, nil, nil); r.code != http.StatusOK {
			t.Errorf("%s: %d %s", path, r.code, r.body)
		}
	}
}

// Searches are planned with their arguments every time (unnamed
// statements): a named prepared statement would switch to a generic plan
// after five runs, one that cannot use the index the argument calls for.
func TestSearchesAreNeverCachedAsPreparedStatements(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.receive(t, "evt-plan", "plan@example.com")
	for range 8 {
		for _, path := range []string{"/api/events?q=plan%40example.com", "/api/messages?destination=email-api"} {
			if r := b.do(t, http.MethodGet, path, "bearer:"+viewerToken, nil, nil); r.code != 200 {
				t.Fatalf("%s: %d", path, r.code)
			}
		}
	}
	conns := b.pool.AcquireAllIdle(t.Context())
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for _, c := range conns {
		var n int
		err := c.QueryRow(t.Context(), `SELECT count(*) FROM pg_prepared_statements
			WHERE (statement LIKE '%jsonb_path_query_array%' OR statement LIKE '%attempts_base%')
			AND statement NOT LIKE '%pg_prepared_statements%'`).Scan(&n)
		if err != nil || n != 0 {
			t.Fatalf("%d search statements cached as prepared statements (%v)", n, err)
		}
	}
}
