package console_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
)

// What senders and downstreams wrote is shown escaped: it cannot run
// script in the operator's browser (and the CSP allows none anyway).
func TestHostileContentIsEscaped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const evil = `"><script>alert(1)</script><img src=x onerror=alert(2)>`
	for range 2 { // delivered twice, as senders do
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			_, err := b.in.Record(ctx, tx, inbox.Event{Source: "forms", ID: "evt-" + evil, Type: evil,
				Payload: []byte(`{"name":"` + strings.ReplaceAll(evil, `"`, `\"`) + `"}`), Refs: map[string]string{"email": evil},
				Headers: http.Header{"X-Evil": {evil}}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	auth := "basic:vic:" + viewerPass
	for _, path := range []string{"/events?q=email%3D" + strings.ReplaceAll(evil, " ", "+"), "/events/forms/evt-" + evil, "/failures"} {
		r := b.do(t, http.MethodGet, strings.ReplaceAll(strings.ReplaceAll(path, "<", "%3C"), ">", "%3E"), auth, nil, nil)
		if r.code != 200 {
			t.Fatalf("%s: %d", path, r.code)
		}
		if strings.Contains(r.body, "<script>") || strings.Contains(r.body, "<img") {
			t.Fatalf("%s: hostile markup rendered as markup:\n%s", path, r.body)
		}
	}
}

// Admins requeueing the same dead letters at once: each is requeued once,
// and the audit adds up to exactly what happened.
func TestConcurrentRequeuesRequeueEachOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 12 {
		b.kill(t, b.receive(t, "evt-c"+string(rune('a'+i)), "c@example.com"))
	}
	var wg sync.WaitGroup
	replies := make([]reply, 8)
	errs := make([]error, len(replies))
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i], errs[i] = b.try(http.MethodPost, "/api/dead/requeue", "bearer:"+adminToken, strings.NewReader(`{"all":true}`), nil)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, r := range replies {
		total += decode[map[string]any](t, r)["count"].(float64)
	}
	var pending, audited, ids int
	err := b.pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM outboxd.outbox_messages WHERE status = 'pending' AND attempts_base = 1),
		(SELECT coalesce(sum(count), 0) FROM outboxd.console_audit),
		(SELECT count(DISTINCT u.mid) FROM outboxd.console_audit, unnest(message_ids) AS u(mid))`).Scan(&pending, &audited, &ids)
	if err != nil {
		t.Fatal(err)
	}
	if total != 12 || pending != 12 || audited != 12 || ids != 12 {
		t.Fatalf("requeued %v in all, %d pending, %d audited, %d distinct ids; want 12 each", total, pending, audited, ids)
	}
}
