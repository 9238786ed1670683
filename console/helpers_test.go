package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/console"
	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// Credentials of the test users; each test asserts none is ever echoed.
const (
	adminPass   = "admin-pass-3f9c1e"
	viewerPass  = "viewer-pass-7a2d4b"
	adminToken  = "admin-token-c81e9f0a"
	viewerToken = "viewer-token-52b7e6d1"
)

type bundle struct {
	pool *pgxpool.Pool
	srv  *httptest.Server
	in   *inbox.Inbox
	out  *outbox.Outbox
}

func setup(t *testing.T) *bundle {
	t.Helper()
	return setupOn(t, pgtest.Pool(t))
}

// setupOn is setup with a pool of the caller's (its query mode, say).
func setupOn(t *testing.T, pool *pgxpool.Pool) *bundle {
	t.Helper()
	c, err := console.New(pool, &console.Config{Users: []console.User{
		{Name: "ada", Role: console.Admin, Password: adminPass},
		{Name: "vic", Role: console.Viewer, Password: viewerPass},
		{Name: "bot", Role: console.Admin, Token: adminToken},
		{Name: "ro-bot", Role: console.Viewer, Token: viewerToken},
	}, PageSize: 50, Destinations: []string{"email-api"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	in, _ := inbox.New(nil)
	out, _ := outbox.New(nil)
	return &bundle{pool: pool, srv: srv, in: in, out: out}
}

// receive records an event twice (a sender's retry), with the welcome email
// it causes enqueued in the same transaction the first time.
func (b *bundle) receive(t *testing.T, id, email string) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	var msgID uuid.UUID
	for range 2 {
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			res, err := b.in.Record(ctx, tx, inbox.Event{Source: "forms", ID: id, Type: "lead.created",
				Payload: []byte(`{"email":"` + email + `"}`), Refs: map[string]string{"email": email, "contact_id": "c-" + id},
				Headers: http.Header{"Content-Type": {"application/json"}}})
			if err != nil || !res.New {
				return err
			}
			e, err := b.out.Enqueue(ctx, tx, outbox.Message{Destination: "email-api", Type: "email.welcome",
				OrderingKey: "contact-" + id, Payload: []byte(`{"to":"` + email + `"}`),
				Headers:  http.Header{"Authorization": {"Bearer downstream-secret-xyz"}},
				CausedBy: &outbox.EventRef{Source: "forms", EventID: id}})
			msgID = e.ID
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return msgID
}

// kill makes a message a dead letter, as the dispatcher leaves one after
// its last failed attempt (the dead-lettering itself is worker's to test).
func (b *bundle) kill(t *testing.T, id uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `
WITH m AS (UPDATE outboxd.outbox_messages SET status = 'dead', attempts = 1, last_error = 'HTTP 422', last_status_code = 422 WHERE id = $1 RETURNING id)
INSERT INTO outboxd.outbox_attempts (message_id, attempt, attempted_at, duration_ms, outcome, status_code, error, response_body)
SELECT id, 1, now(), 12.5, 'dead', 422, 'HTTP 422', '{"error":"bad template"}' FROM m`, id)
	if err != nil {
		t.Fatal(err)
	}
}

func (b *bundle) status(t *testing.T, id uuid.UUID) string {
	t.Helper()
	var s string
	if err := b.pool.QueryRow(context.Background(), `SELECT status FROM outboxd.outbox_messages WHERE id = $1`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

type reply struct {
	code int
	h    http.Header
	body string
}

// do sends a request with auth ("basic:user:pass", "bearer:token" or "");
// on the test's goroutine only (it calls t.Fatal): other goroutines use try.
func (b *bundle) do(t *testing.T, method, path, auth string, body io.Reader, hdr map[string]string) reply {
	t.Helper()
	r, err := b.try(method, path, auth, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// try is do returning its error, for goroutines: an answer that contains a
// credential is an error too.
func (b *bundle) try(method, path, auth string, body io.Reader, hdr map[string]string) (reply, error) {
	req, err := http.NewRequest(method, b.srv.URL+path, body)
	if err != nil {
		return reply{}, err
	}
	switch kind, rest, _ := strings.Cut(auth, ":"); kind {
	case "basic":
		u, p, _ := strings.Cut(rest, ":")
		req.SetBasicAuth(u, p)
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+rest)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	all, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, h: resp.Header, body: string(all)}
	for _, secret := range []string{adminPass, viewerPass, adminToken, viewerToken, "downstream-secret-xyz"} {
		if strings.Contains(r.body, secret) {
			return r, fmt.Errorf("%s %s: the answer contains a credential:\n%s", method, path, r.body)
		}
	}
	return r, nil
}

func (b *bundle) form(t *testing.T, path, auth string, v url.Values) reply {
	t.Helper()
	return b.do(t, http.MethodPost, path, auth, strings.NewReader(v.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

func (b *bundle) csrf(t *testing.T, auth string) string {
	t.Helper()
	r := b.do(t, http.MethodGet, "/api/session", auth, nil, nil)
	var s struct {
		Token string `json:"csrf_token"`
	}
	if err := json.Unmarshal([]byte(r.body), &s); err != nil || s.Token == "" {
		t.Fatalf("session: %d %s %v", r.code, r.body, err)
	}
	return s.Token
}

func decode[T any](t *testing.T, r reply) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("decode %d %q: %v", r.code, r.body, err)
	}
	return v
}

// hiddenField matches the confirmation form's hidden fields (rendered
// name first, then value).
var hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// confirm asks for a confirmation page and returns the fields its "Yes"
// button would send (csrf left out), as a person confirming would.
func (b *bundle) confirm(t *testing.T, auth, token, action string, sel url.Values) url.Values {
	t.Helper()
	v := url.Values{"csrf": {token}, "action": {action}}
	for k, vs := range sel {
		v[k] = vs
	}
	r := b.form(t, "/dead/confirm", auth, v)
	if r.code != http.StatusOK {
		t.Fatalf("confirm: %d %s", r.code, r.body)
	}
	out := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(r.body, -1) {
		if m[1] != "csrf" {
			out.Add(m[1], html.UnescapeString(m[2]))
		}
	}
	if out.Get("digest") == "" {
		t.Fatalf("the confirmation carries no digest:\n%s", r.body)
	}
	return out
}

// with returns v with k set to val (v unchanged).
func with(v url.Values, k, val string) url.Values {
	out := url.Values{}
	for kk, vv := range v {
		out[kk] = slices.Clone(vv)
	}
	out.Set(k, val)
	return out
}
