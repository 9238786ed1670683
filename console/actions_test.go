package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestRequeueByFilterIsConfirmedWithItsCountAndAudited(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []uuid.UUID
	for _, e := range []string{"evt-r1", "evt-r2", "evt-r3"} {
		id := b.receive(t, e, e+"@example.com")
		b.kill(t, id)
		ids = append(ids, id)
	}
	admin := "basic:ada:" + adminPass
	token := b.csrf(t, admin)
	r := b.form(t, "/dead/confirm", admin, url.Values{"csrf": {token}, "action": {"requeue"}, "destination": {"email-api"}})
	if r.code != 200 || !strings.Contains(r.body, "<strong>3</strong> dead letter") || !strings.Contains(r.body, `name="expect" value="3"`) {
		t.Fatalf("confirmation: %d\n%s", r.code, r.body)
	}
	for _, id := range ids {
		if b.status(t, id) != "dead" {
			t.Fatal("the confirmation page changed something")
		}
	}
	// A fourth dead letter arrives before the operator confirms: nothing
	// changes, the operator is asked again.
	b.kill(t, b.receive(t, "evt-r4", "r4@example.com"))
	r = b.form(t, "/dead/requeue", admin, url.Values{"csrf": {token}, "destination": {"email-api"}, "expect": {"3"}})
	if r.code != http.StatusConflict {
		t.Fatalf("count changed: %d %s", r.code, r.body)
	}
	for _, id := range ids {
		if b.status(t, id) != "dead" {
			t.Fatal("a requeue whose count changed changed something")
		}
	}
	// Without a confirmed count, or without any selection: refused.
	if r := b.form(t, "/dead/requeue", admin, url.Values{"csrf": {token}, "destination": {"email-api"}}); r.code != http.StatusBadRequest {
		t.Fatalf("unconfirmed: %d", r.code)
	}
	if r := b.form(t, "/dead/confirm", admin, url.Values{"csrf": {token}, "action": {"purge"}}); r.code != http.StatusBadRequest {
		t.Fatalf("empty selection: %d", r.code)
	}
	r = b.form(t, "/dead/requeue", admin, url.Values{"csrf": {token}, "destination": {"email-api"}, "expect": {"4"}})
	if r.code != 200 || !strings.Contains(r.body, "4 dead letter(s) requeued") {
		t.Fatalf("requeue: %d %s", r.code, r.body)
	}
	// Once: the audit shows one action, who and how many, on each message.
	var rows int
	if err := b.pool.QueryRow(t.Context(), `SELECT count(*) FROM outboxd.console_audit WHERE action = 'requeue' AND actor = 'ada' AND count = 4 AND cardinality(message_ids) = 4`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("audit rows: %d %v", rows, err)
	}
	page := b.do(t, http.MethodGet, "/messages/"+ids[0].String(), admin, nil, nil)
	if !strings.Contains(page.body, "<td>ada (admin)</td><td>requeue</td><td class=\"num\">4</td>") || !strings.Contains(page.body, `id="status">pending`) {
		t.Fatalf("message page after the requeue:\n%s", page.body)
	}
	api := decode[struct {
		Audit []struct {
			Actor, Action string
			Count         int64
		} `json:"audit"`
	}](t, b.do(t, http.MethodGet, "/api/messages/"+ids[1].String(), "bearer:"+viewerToken, nil, nil))
	if len(api.Audit) != 1 || api.Audit[0].Actor != "ada" || api.Audit[0].Action != "requeue" || api.Audit[0].Count != 4 {
		t.Fatalf("API audit: %+v", api.Audit)
	}
}

func TestPurgeAndPauseThroughTheAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.receive(t, "evt-p", "p@example.com")
	b.kill(t, id)
	bot := "bearer:" + adminToken
	dry := decode[map[string]any](t, b.do(t, http.MethodPost, "/api/dead/purge", bot, strings.NewReader(`{"all":true,"dry_run":true}`), nil))
	if dry["count"] != 1.0 || b.status(t, id) != "dead" {
		t.Fatalf("dry run: %v", dry)
	}
	if r := b.do(t, http.MethodPost, "/api/dead/purge", bot, strings.NewReader(`{}`), nil); r.code != http.StatusBadRequest {
		t.Fatalf("purge without a selection: %d %s", r.code, r.body)
	}
	res := decode[map[string]any](t, b.do(t, http.MethodPost, "/api/dead/purge", bot, strings.NewReader(`{"all":true,"expect":1}`), nil))
	if res["count"] != 1.0 {
		t.Fatalf("purge: %v", res)
	}
	var left int
	if err := b.pool.QueryRow(t.Context(), `SELECT count(*) FROM outboxd.outbox_messages`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("after the purge: %d messages", left)
	}

	// Pause, twice (the second changes nothing), then resume, twice.
	for i, want := range []bool{true, false} {
		got := decode[map[string]any](t, b.do(t, http.MethodPost, "/api/destinations/email-api/pause", bot, strings.NewReader(`{"reason":"maintenance window"}`), nil))
		if got["changed"] != want {
			t.Fatalf("pause #%d: %v", i+1, got)
		}
	}
	type dests struct {
		Destinations []struct {
			Name        string
			PauseReason string `json:"pause_reason"`
			Paused      bool
		} `json:"destinations"`
	}
	d := decode[dests](t, b.do(t, http.MethodGet, "/api/destinations", bot, nil, nil))
	if len(d.Destinations) != 1 || !d.Destinations[0].Paused || d.Destinations[0].PauseReason != "maintenance window" {
		t.Fatalf("destinations: %+v", d)
	}
	for i, want := range []bool{true, false} {
		got := decode[map[string]any](t, b.do(t, http.MethodPost, "/api/destinations/email-api/resume", bot, nil, nil))
		if got["changed"] != want {
			t.Fatalf("resume #%d: %v", i+1, got)
		}
	}
	var actions string
	if err := b.pool.QueryRow(t.Context(), `SELECT string_agg(action || ':' || actor, ',' ORDER BY id) FROM outboxd.console_audit`).Scan(&actions); err != nil {
		t.Fatal(err)
	}
	if actions != "purge:bot,pause:bot,resume:bot" {
		t.Fatalf("audit: %s (an action that changed nothing is not recorded)", actions)
	}
}
