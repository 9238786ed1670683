package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/sink"
	"github.com/outboxd/outboxd/outbox"
)

// documentedGrants is the SQL block of docs/operations.md ("Roles and
// grants") with the test's role names in place of the doc's.
func documentedGrants(t *testing.T, owner, app string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "<!-- grants:begin -->")
	block, _, ok2 := strings.Cut(rest, "<!-- grants:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/operations.md has no grants:begin/grants:end block")
	}
	block = strings.TrimSpace(block)
	block = strings.TrimSuffix(strings.TrimPrefix(block, "```sql"), "```")
	return strings.NewReplacer("outboxd_owner", owner, "outboxd_app", app).Replace(block)
}

// loginRole creates a login role with a password (for a server that does
// not trust local connections) and returns dbURL as that role; the role and
// what it owns in that database go when the test ends.
func loginRole(t *testing.T, dbURL, role string) string {
	t.Helper()
	ctx := context.Background()
	pw := rand.Text()
	admin := pgtest.Connect(t, pgtest.AdminURL(t))
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, pw)); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dbAdmin, err := pgx.Connect(context.Background(), withUser(u, "", "").String())
		if err == nil {
			_, _ = dbAdmin.Exec(context.Background(), "DROP OWNED BY "+role)
			_ = dbAdmin.Close(context.Background())
		}
		_, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
	})
	return withUser(u, role, pw).String()
}

// withUser is u as user (u's own user when user is empty).
func withUser(u *url.URL, user, pw string) *url.URL {
	c := *u
	if user != "" {
		c.User = url.UserPassword(user, pw)
	}
	return &c
}

func githubSignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestTheDocumentedGrantsAreEnough runs docs/operations.md's grants as
// written: a non-superuser owner migrates an empty database, then migrates
// it down and up again (tables created after the grants, which only the
// default privileges cover); the runtime role then receives webhooks,
// enqueues, serves (delivery and purge) and runs the operator commands.
func TestTheDocumentedGrantsAreEnough(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sfx := strings.ToLower(rand.Text()[:8])
	dbURL := pgtest.EmptyURL(t)
	owner, app := "outboxd_owner_"+sfx, "outboxd_app_"+sfx
	ownerURL, appURL := loginRole(t, dbURL, owner), loginRole(t, dbURL, app)
	admin := pgtest.Connect(t, dbURL)
	dbName := strings.TrimPrefix(mustParse(t, dbURL).Path, "/")
	if _, err := admin.Exec(ctx, fmt.Sprintf("GRANT CREATE ON DATABASE %q TO %s", dbName, owner)); err != nil {
		t.Fatal(err)
	}

	migrate := func(args ...string) {
		t.Helper()
		if r := outboxd(t, nil, append([]string{"migrate"}, append(args, "--database-url", ownerURL)...)...); r.code != 0 {
			t.Fatalf("migrate %v as the owner: exit %d: %s", args, r.code, r.stderr)
		}
	}
	migrate("up")
	// Before the grants: the runtime role is told what it lacks and where
	// the grants are, not the owner's remedy.
	if r := outboxd(t, nil, "outbox", "dead", "--database-url", appURL); r.code != 1 ||
		!strings.Contains(r.stderr, `docs/operations.md, "Roles and grants"`) || strings.Contains(r.stderr, "CREATE") {
		t.Fatalf("outbox dead without the grants: exit %d, %q; want exit 1 pointing to the grants", r.code, r.stderr)
	}
	ownerPool := pgtest.Connect(t, ownerURL)
	if _, err := ownerPool.Exec(ctx, documentedGrants(t, owner, app)); err != nil {
		t.Fatalf("the documented grants: %v", err)
	}
	// Tables of migrations 5 to 16 dropped (console_audit among them), and
	// made again by the owner: only the default privileges cover them now.
	migrate("down", "--to", "4")
	migrate("up")

	// Migrations are the owner's: the runtime role is told so, not to ask
	// for CREATE on the database (which changes nothing).
	if r := outboxd(t, nil, "migrate", "down", "--database-url", appURL); r.code != 1 ||
		!strings.Contains(r.stderr, "run them as the role that owns its schema") || strings.Contains(r.stderr, "CREATE on the database") {
		t.Fatalf("migrate down as the runtime role: exit %d, %q", r.code, r.stderr)
	}

	// The application, as the runtime role: signed webhooks, each delivered
	// twice, whose handler enqueues one message; one badly signed.
	appPool := pgtest.Connect(t, appURL)
	in, _ := inbox.New(nil)
	ob, _ := outbox.New(nil)
	const secret = "grants-test-secret"
	gh, err := verify.GitHub(secret)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := inbox.NewReceiver(appPool, in, &inbox.ReceiverConfig{Sources: []inbox.Source{{Name: "github", Verifier: gh,
		Handle: func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
			if err := d.AddRefs(ctx, tx, map[string]string{"repo": "outboxd"}); err != nil {
				return err
			}
			_, err := ob.Enqueue(ctx, tx, outbox.Message{Destination: "sink", OrderingKey: "repo-outboxd", Payload: d.Body,
				CausedBy: &outbox.EventRef{Source: d.Source, EventID: d.ID}})
			return err
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	post := func(id, sig string, body []byte) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/github", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Delivery", id)
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const events = 5
	for round := range 2 {
		for i := range events {
			body := fmt.Appendf(nil, `{"i":%d}`, i)
			if code := post(fmt.Sprintf("evt-%d", i), githubSignature(secret, body), body); code != http.StatusOK {
				t.Fatalf("delivery %d of event %d as the runtime role: status %d", round+1, i, code)
			}
		}
	}
	if code := post("evt-forged", githubSignature("not-the-secret", []byte(`{}`)), []byte(`{}`)); code/100 != 4 {
		t.Fatalf("a forged signature: status %d, want 4xx", code)
	}

	// The dispatcher and the purge, as the runtime role.
	s := sink.Start()
	t.Cleanup(s.Close)
	config := serveConfig(t, appURL, s.URL())
	cfg, _ := os.ReadFile(config)
	consoleAddr := freeAddr(t)
	cfg = append(cfg, "maintenance:\n  interval: 100ms\n  delivered_retention: 1ms\n"...)
	cfg = append(cfg, "console:\n  listen: "+consoleAddr+"\n  users:\n    ops:\n      role: admin\n      token_env: OUTBOXD_GRANTS_TOKEN\n"...)
	if err := os.WriteFile(config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	token := rand.Text()
	serveStarted := time.Now()
	d := startDaemonEnv(t, []string{"OUTBOXD_GRANTS_TOKEN=" + token}, config)
	var left int
	waitUntil(t, 60*time.Second, "every message delivered once and purged", func() bool {
		return len(s.Accepted()) >= events &&
			admin.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_messages`).Scan(&left) == nil && left == 0
	})
	if n := len(s.Accepted()); n != events {
		t.Fatalf("the sink accepted %d requests for %d events delivered twice each; want %d", n, events, events)
	}
	// The purge says it ran (OutboxdPurgeStalled watches this).
	waitUntil(t, 30*time.Second, "outboxd_maintenance_last_success_timestamp_seconds after the serve's start", func() bool {
		_, m := d.get("/metrics")
		for line := range strings.Lines(m) {
			if v, ok := strings.CutPrefix(line, "outboxd_maintenance_last_success_timestamp_seconds "); ok {
				at, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				return err == nil && at >= float64(serveStarted.Unix())
			}
		}
		return false
	})

	// The operator's commands, as the runtime role.
	for _, args := range [][]string{
		{"inbox", "show", "github", "evt-1"},
		{"inbox", "find", "repo=outboxd"},
		{"inbox", "failures"},
		{"outbox", "dead"},
		{"outbox", "paused"},
	} {
		if r := outboxd(t, nil, append(args, "--database-url", appURL)...); r.code != 0 {
			t.Errorf("outboxd %s as the runtime role: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if r := outboxdIn(t, nil, `{"sent":"by hand"}`, "send", "--destination", "sink", "--database-url", appURL); r.code != 0 {
		t.Errorf("outboxd send as the runtime role: exit %d: %s", r.code, r.stderr)
	}
	waitUntil(t, 30*time.Second, "the sent message delivered", func() bool { return len(s.Accepted()) == events+1 })
	// The console's actions, audited (console_audit was made anew above).
	for _, action := range []string{"pause", "resume"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+consoleAddr+"/api/destinations/sink/"+action, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("console %s as the runtime role: %d %s", action, resp.StatusCode, body)
		}
	}
	var audited int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM outboxd.console_audit`).Scan(&audited); err != nil || audited != 2 {
		t.Fatalf("%d console actions audited (%v), want 2", audited, err)
	}
	// What the block revokes stays revoked.
	if _, err := appPool.Exec(ctx, `DELETE FROM outboxd.outboxd_migrations`); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("the runtime role may change the migrations' table: %v", err)
	}
	if code := d.terminate(t); code != 0 {
		t.Fatalf("serve as the runtime role exited %d", code)
	}
	if strings.Contains(d.stderr.String(), "permission denied") {
		t.Fatalf("serve as the runtime role was denied something:\n%s", d.stderr.String())
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
