package main

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

// A dispatcher whose role is refused what its claims need renews its
// leases all the same: /readyz said 200 while nothing could be delivered
// (an operator's trial, REVOKE on outbox_messages). It now answers 503
// naming the refused operations until a grant lets them succeed, counts
// them in outboxd_database_errors_total, shows them in
// outboxd_database_refused, and delivers once granted.
func TestReadyzNamesWhatTheRoleIsRefused(t *testing.T) {
	t.Parallel()
	b := newServeBundle(t)
	ctx := context.Background()
	role := "outboxd_revoked_" + strings.ToLower(rand.Text()[:8])
	roleURL := loginRole(t, b.url, role)
	if _, err := b.pool.Exec(ctx, documentedGrants(t, "postgres", role)); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, serveConfig(t, roleURL, b.sink.URL()))
	d.waitReady(t)
	if _, err := b.pool.Exec(ctx, "REVOKE SELECT ON outboxd.outbox_messages FROM "+role); err != nil {
		t.Fatal(err)
	}
	// A commit wakes the lanes, which claim; idle, they are probed, and
	// the probe is refused too.
	b.enqueue(t, 5, 5)
	var body string
	waitUntil(t, 20*time.Second, "/readyz 503 naming the refused claim", func() bool {
		var code int
		code, body = d.get("/readyz")
		return code == 503 && strings.Contains(body, "refuses its role a privilege for:") && strings.Contains(body, "claim")
	})
	if !strings.Contains(body, "Roles and grants") {
		t.Fatalf("/readyz names no remedy: %s", body)
	}
	_, metrics := d.get("/metrics")
	if !strings.Contains(metrics, `outboxd_database_errors_total{cause="privilege",operation="claim"}`) ||
		strings.Contains(metrics, `outboxd_database_errors_total{cause="privilege",operation="claim"} 0`) {
		t.Fatalf("the refused claims are not counted:\n%s", grepLines(metrics, "outboxd_database_errors_total"))
	}
	if !strings.Contains(metrics, `outboxd_database_refused{operation="claim"} 1`) {
		t.Fatalf("the refusal is not in outboxd_database_refused:\n%s", grepLines(metrics, "outboxd_database_refused"))
	}
	if _, err := b.pool.Exec(ctx, "GRANT SELECT ON outboxd.outbox_messages TO "+role); err != nil {
		t.Fatal(err)
	}
	d.waitReady(t)
	waitUntil(t, 20*time.Second, "the 5 messages delivered once granted", func() bool { return len(b.sink.Accepted()) == 5 })
	if !strings.Contains(d.stderr.String(), "grants this dispatcher's role what claim needs again") {
		t.Errorf("no line says the claims are granted again:\n%s", d.stderr.String())
	}
	if _, metrics := d.get("/metrics"); !strings.Contains(metrics, `outboxd_database_refused{operation="claim"} 0`) {
		t.Fatalf("outboxd_database_refused after the grant:\n%s", grepLines(metrics, "outboxd_database_refused"))
	}
	// An outage line may come from this machine's load (a slow round);
	// none may be the refusal's.
	for line := range strings.Lines(d.stderr.String()) {
		if (strings.Contains(line, "database operation failed") || strings.Contains(line, "still failing")) &&
			strings.Contains(line, "42501") {
			t.Fatalf("a refused privilege logged as an outage:\n%s", line)
		}
	}
}

// grepLines returns text's lines that contain s.
func grepLines(text, s string) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
