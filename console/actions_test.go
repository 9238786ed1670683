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
	confirmed := b.confirm(t, admin, token, "requeue", url.Values{"destination": {"email-api"}})
	// A fourth dead letter, created after the confirmation: the pinned
	// until leaves it out, the digest still matches.
	late := b.receive(t, "evt-r4", "r4@example.com")
	b.kill(t, late)
	// Without the confirmation's count and digest, or without any
	// selection: refused.
	if r := b.form(t, "/dead/requeue", admin, url.Values{"csrf": {token}, "destination": {"email-api"}, "expect": {"3"}}); r.code != http.StatusBadRequest {
		t.Fatalf("unconfirmed: %d", r.code)
	}
	if r := b.form(t, "/dead/confirm", admin, url.Values{"csrf": {token}, "action": {"purge"}}); r.code != http.StatusBadRequest {
		t.Fatalf("empty selection: %d", r.code)
	}
	r = b.form(t, "/dead/requeue", admin, with(confirmed, "csrf", token))
	if r.code != 200 || !strings.Contains(r.body, "3 dead letter(s) requeued") {
		t.Fatalf("requeue: %d %s", r.code, r.body)
	}
	if b.status(t, late) != "dead" {
		t.Fatal("a dead letter created after the confirmation was requeued")
	}
	// Requeued by the one confirmation only: sent again, it changes nothing.
	if r := b.form(t, "/dead/requeue", admin, with(confirmed, "csrf", token)); r.code != http.StatusConflict {
		t.Fatalf("the same confirmation twice: %d", r.code)
	}
	// Once: the audit shows one action, who and how many, on each message.
	var rows int
	if err := b.pool.QueryRow(t.Context(), `SELECT count(*) FROM outboxd.console_audit WHERE action = 'requeue' AND actor = 'ada' AND count = 3 AND cardinality(message_ids) = 3`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("audit rows: %d %v", rows, err)
	}
	page := b.do(t, http.MethodGet, "/messages/"+ids[0].String(), admin, nil, nil)
	if !strings.Contains(page.body, "<td>ada (admin)</td><td>requeue</td><td class=\"num\">3</td>") || !strings.Contains(page.body, `id="status">pending`) {
		t.Fatalf("message page after the requeue:\n%s", page.body)
	}
	api := decode[struct {
		Audit []struct {
			Actor, Action string
			Count         int64
		} `json:"audit"`
	}](t, b.do(t, http.MethodGet, "/api/messages/"+ids[1].String(), "bearer:"+viewerToken, nil, nil))
	if len(api.Audit) != 1 || api.Audit[0].Actor != "ada" || api.Audit[0].Action != "requeue" || api.Audit[0].Count != 3 {
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

// A confirmation names the dead letters it showed, not just their number:
// if one leaves (requeued by someone else) and another, created before the
// confirmation, dies meanwhile, the count is the same but the rows are not,
// and the action changes nothing (409). The API's dry run gives the same
// digest to send back.
func TestConfirmedActionActsOnTheConfirmedRows(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, bb, c := b.receive(t, "evt-a", "a@example.com"), b.receive(t, "evt-b", "b@example.com"), b.receive(t, "evt-c", "c@example.com")
	b.kill(t, a)
	b.kill(t, bb)
	admin := "basic:ada:" + adminPass
	token := b.csrf(t, admin)
	confirmed := b.confirm(t, admin, token, "purge", url.Values{"destination": {"email-api"}})
	if confirmed.Get("expect") != "2" || confirmed.Get("until") == "" {
		t.Fatalf("confirmation fields: %v", confirmed)
	}
	dry := decode[map[string]any](t, b.do(t, http.MethodPost, "/api/dead/purge", "bearer:"+adminToken,
		strings.NewReader(`{"destination":"email-api","until":"`+confirmed.Get("until")+`","dry_run":true}`), nil))
	if dry["digest"] != confirmed.Get("digest") {
		t.Fatalf("the API's dry run digest %v, the page's %s", dry["digest"], confirmed.Get("digest"))
	}
	// Someone requeues a; c, created before the confirmation, dies.
	if r := b.do(t, http.MethodPost, "/api/dead/requeue", "bearer:"+adminToken, strings.NewReader(`{"ids":["`+a.String()+`"]}`), nil); r.code != http.StatusOK {
		t.Fatalf("requeue a: %d %s", r.code, r.body)
	}
	b.kill(t, c)
	if r := b.form(t, "/dead/purge", admin, with(confirmed, "csrf", token)); r.code != http.StatusConflict {
		t.Fatalf("same count, other rows: %d, want 409", r.code)
	}
	body := `{"destination":"email-api","until":"` + confirmed.Get("until") + `","expect":2,"digest":"` + confirmed.Get("digest") + `"}`
	if r := b.do(t, http.MethodPost, "/api/dead/purge", "bearer:"+adminToken, strings.NewReader(body), nil); r.code != http.StatusConflict {
		t.Fatalf("API, same count, other rows: %d, want 409", r.code)
	}
	if b.status(t, bb) != "dead" || b.status(t, c) != "dead" || b.status(t, a) != "pending" {
		t.Fatal("a refused purge changed something")
	}
	// A filter on the list's keys is the action's filter too.
	keyed := b.confirm(t, admin, token, "requeue", url.Values{"ordering_key": {"contact-evt-c"}})
	if keyed.Get("expect") != "1" || keyed.Get("ordering_key") != "contact-evt-c" {
		t.Fatalf("by ordering key: %v", keyed)
	}
	if r := b.form(t, "/dead/requeue", admin, with(keyed, "csrf", token)); r.code != http.StatusOK || b.status(t, c) != "pending" || b.status(t, bb) != "dead" {
		t.Fatalf("requeue by ordering key: %d; c %s, b %s", r.code, b.status(t, c), b.status(t, bb))
	}
}
