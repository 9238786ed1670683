package console_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"riverqueue.com/riverui"

	"github.com/outboxd/outboxd/console"
	"github.com/outboxd/outboxd/examples/crm-deals/crm"
	"github.com/outboxd/outboxd/examples/crm-deals/storm"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

// chromium finds Debian's chromium, installing it when missing (as root,
// with apt-get); otherwise the test fails and says how to get it. It never
// skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() == 0 {
		if apt, err := exec.LookPath("apt-get"); err == nil {
			t.Log("chromium is missing: installing it with apt-get install -y chromium")
			out, err := exec.Command(apt, "install", "-y", "chromium").CombinedOutput()
			if p, lerr := exec.LookPath("chromium"); err == nil && lerr == nil {
				return p
			}
			t.Logf("apt-get: %v\n%s", err, out)
		}
	}
	t.Fatal("the browser tests need Chromium: install Debian's package (apt-get install -y chromium) or put chromium on PATH")
	return ""
}

// screenshots is where the browser test leaves its screenshots:
// $OUTBOXD_SCREENSHOTS, or a new folder under the system's temp dir. It
// outlives the test on purpose: they are the test's artifacts.
func screenshots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("OUTBOXD_SCREENSHOTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "outboxd-console-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of the console: %s", dir)
	return dir
}

// TestBrowserOperatorJourney drives the console with a real headless
// Chromium over a database filled by the crm-deals storm (every webhook of
// it delivered at least twice): search an email, open the contact's event,
// follow it to its welcome email and attempts, requeue a dead letter and
// see it delivered, pause and resume a destination; without credentials
// 401, without the CSRF token 403.
func TestBrowserOperatorJourney(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	shots := screenshots(t)
	ctx := context.Background()

	pool := pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=12")
	env, err := storm.Start(ctx, pool, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	began := time.Now()
	if _, err := env.Run(ctx); err != nil {
		t.Fatalf("storm: %v", err)
	}
	t.Logf("storm played in %s", time.Since(began).Round(time.Millisecond))
	began = time.Now()
	defer func() { t.Logf("browser journey took %s", time.Since(began).Round(time.Millisecond)) }()
	const user, pass = "oncall", "browser-test-pass-41c2"
	rc, err := river.NewClient[pgx.Tx](riverpgxv5.New(pool), &river.Config{Schema: "outboxd", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rui, err := riverui.NewHandler(&riverui.HandlerOpts{Endpoints: riverui.NewEndpoints(rc, nil), Logger: slog.New(slog.DiscardHandler), Prefix: "/riverui"})
	if err != nil {
		t.Fatal(err)
	}
	ruiCtx, stopRUI := context.WithCancel(ctx)
	t.Cleanup(stopRUI)
	if err := rui.Start(ruiCtx); err != nil {
		t.Fatal(err)
	}
	c, err := console.New(pool, &console.Config{Users: []console.User{{Name: user, Role: console.Admin, Password: pass}}, RiverUI: rui})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)

	// A dead letter: the chat API refuses (422) a note, for good.
	env.Downstream.SetRefusing(true)
	dead := enqueueNote(t, env, "deal-L03")
	waitStatus(t, env, dead, "dead")
	env.Downstream.SetRefusing(false)

	// The whole browser lives under the 60 s budget (chromedp starts it
	// on the first Run, under this context).
	budget, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	alloc, cancel := chromedp.NewExecAllocator(budget, chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1366, 900))
	defer cancel()
	browser, cancel := chromedp.NewContext(alloc)
	defer cancel()

	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		})
	}
	// A step that fails leaves the last seconds of the budget to say what
	// the page showed (its address, its text, a screenshot): a wait that
	// ran out said only "context deadline exceeded".
	// The browser and its tab start here, on the browser's own context:
	// started under a step's shorter one, they would end with it.
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start the browser: %v", err)
	}
	lastSeconds, _ := budget.Deadline()
	lastSeconds = lastSeconds.Add(-8 * time.Second)
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithDeadline(browser, lastSeconds)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v\n%s", step, err, pageState(browser, shots, step))
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	// navigating runs action, a click or a submit that loads another page,
	// and returns once that page has loaded. A query started while the old
	// page was being replaced could wait on the old one until the budget
	// ran out: full CI runs failed three times at "results", with the
	// results on screen (pageState).
	navigating := func(action chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := chromedp.Evaluate[chromedp.Void](`window.outboxdOldPage = true`)(ctx, tg); err != nil {
				return err
			}
			if _, err := action(ctx, tg); err != nil {
				return err
			}
			for {
				// A new page has a new window; while it loads, the
				// evaluation may fail (its context is being replaced).
				loaded, err := chromedp.Evaluate[bool](`window.outboxdOldPage === undefined && document.readyState === 'complete'`)(ctx, tg)
				if err == nil && loaded {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("the next page did not load: %w", ctx.Err())
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
	}
	withAuth := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
		return err
	})

	// Search an email and land on the contact's events (two deals: L05 and L12).
	run("open", chromedp.Navigate("about:blank"), withAuth)
	run("events", chromedp.Navigate(srv.URL+"/events"))
	run("type", chromedp.SendKeys(css(`input[name="q"]`), "customer05@example.com"))
	run("submit", navigating(chromedp.Submit(css(`input[name="q"]`))))
	run("results", chromedp.WaitVisible(css(`a[href="/events/forms/form_evt_L12"]`)),
		shot("01-events-search"))
	if rows := text("#events tbody"); !strings.Contains(rows, "form_evt_L05") || strings.Contains(rows, "form_evt_L01") {
		t.Fatalf("search for customer05's email found:\n%s", rows)
	}
	// Open one, then follow it to its welcome email and its attempts.
	run("event", navigating(chromedp.Click(css(`a[href="/events/forms/form_evt_L05"]`))),
		chromedp.WaitVisible(css(`#caused`)), shot("02-event"))
	if ev := text("#event"); !strings.Contains(ev, "Duplicates") || !strings.Contains(ev, "customer05@example.com") {
		t.Fatalf("event page:\n%s", ev)
	}
	run("welcome email", navigating(chromedp.Click(chromedp.Search(`//table[@id="caused"]//tr[td[text()="email.welcome"]]//a`))),
		chromedp.WaitVisible(css(`#attempts`)), shot("03-message"))
	if st := text("#status"); st != "delivered" {
		t.Fatalf("welcome email status %q", st)
	}
	if att := text("#attempts tbody"); !strings.Contains(att, "delivered") || !strings.Contains(att, "200") {
		t.Fatalf("attempts:\n%s", att)
	}
	run("back to its event", navigating(chromedp.Click(css(`#cause`))), chromedp.WaitVisible(css(`#caused`)))

	// Requeue the dead letter: tick it, see the count, confirm, see it delivered.
	run("dead letters", chromedp.Navigate(srv.URL+"/dead"),
		chromedp.Click(css(`input[name="id"][value="`+dead.String()+`"]`)), shot("04-dead-letters"),
		navigating(chromedp.Click(css(`#requeue-selected`))), chromedp.WaitVisible(css(`#confirm`)), shot("05-confirm"))
	if n := text("#count"); !strings.Contains(n, "requeue 1 dead letter") {
		t.Fatalf("confirmation: %q", n)
	}
	run("confirm", navigating(chromedp.Click(css(`#confirm`))), chromedp.WaitVisible(css(`#done`)))
	waitStatus(t, env, dead, "delivered")
	run("delivered", chromedp.Navigate(srv.URL+"/messages/"+dead.String()), chromedp.WaitVisible(css(`#audit`)), shot("06-requeued-message"))
	if st, audit := text("#status"), text("#audit tbody"); st != "delivered" || !strings.Contains(audit, user+" (admin)") || !strings.Contains(audit, "requeue") {
		t.Fatalf("after the requeue: status %q, audit:\n%s", st, audit)
	}

	// Pause and resume a destination.
	row := `#dest-` + crm.SalesChat
	run("pause", chromedp.Navigate(srv.URL+"/destinations"), chromedp.WaitVisible(css(row)), shot("07-destinations"),
		navigating(chromedp.Click(css(row+` button`))), chromedp.WaitVisible(css(`#done`)),
		chromedp.Navigate(srv.URL+"/destinations"), chromedp.WaitVisible(css(row)), shot("08-paused"))
	if st := text(row + " .state"); !strings.HasPrefix(st, "paused") || !paused(t, env, crm.SalesChat) {
		t.Fatalf("after pause: %q", st)
	}
	run("resume", navigating(chromedp.Click(css(row+` button`))), chromedp.WaitVisible(css(`#done`)),
		chromedp.Navigate(srv.URL+"/destinations"), chromedp.WaitVisible(css(row)))
	if st := text(row + " .state"); st != "running" || paused(t, env, crm.SalesChat) {
		t.Fatalf("after resume: %q", st)
	}

	// An action whose form lost its CSRF token is refused, and changes nothing.
	run("no csrf", chromedp.Evaluate[chromedp.Void](`document.querySelector('`+row+` input[name="csrf"]').remove()`),
		navigating(chromedp.Click(css(row+` button`))), chromedp.WaitVisible(css(`#error`)), shot("09-csrf-refused"))
	if e := text("#error"); !strings.Contains(e, "CSRF") || paused(t, env, crm.SalesChat) {
		t.Fatalf("without the CSRF token: %q, paused %v", e, paused(t, env, crm.SalesChat))
	}
	run("failures page", chromedp.Navigate(srv.URL+"/failures"), chromedp.WaitVisible(css(`#failure-groups`)), shot("10-failures"))
	// River UI, behind the same sign-in: its scripts run under its CSP and
	// render the app.
	run("river ui", navigating(chromedp.Click(css(`a[href="/riverui/"]`))), chromedp.WaitVisible(css(`#root a[href="/riverui/queues"]`)), shot("11-river-ui"))

	// A fresh tab has no credentials: 401.
	if code := anonymousStatus(t, browser, srv.URL+"/events"); code != http.StatusUnauthorized {
		t.Fatalf("without credentials: %d, want 401", code)
	}
}

// anonymousStatus loads url in a new tab, which has no Authorization
// header, and returns the status of the answer. Chromium fails a
// navigation whose basic-auth challenge nobody answers, so the tab answers
// it with "cancel", as a person closing the sign-in dialog does, and the
// 401 page loads.
func anonymousStatus(t *testing.T, browser context.Context, url string) int64 {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	defer cancel()
	events := make(chan any, 64)
	err := chromedp.Listen(tab, func(ev any) {
		switch ev.(type) {
		case *fetch.EventRequestPaused, *fetch.EventAuthRequired:
			events <- ev // handled below: a listener must not run commands
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			select {
			case <-tab.Done():
				return
			case ev := <-events:
				switch e := ev.(type) {
				case *fetch.EventRequestPaused:
					_, _ = chromedp.Call(tab, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
				case *fetch.EventAuthRequired:
					_, _ = chromedp.Call(tab, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: e.RequestID,
						AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}})
				}
			}
		}
	}()
	handleAuth := true
	if _, err := chromedp.Call(tab, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &handleAuth}); err != nil {
		t.Fatal(err)
	}
	resp, err := chromedp.RunResponse(tab, chromedp.Navigate(url))
	if err != nil {
		t.Fatalf("anonymous load of %s: %v", url, err)
	}
	return resp.Status
}

func enqueueNote(t *testing.T, env *storm.Env, deal string) uuid.UUID {
	t.Helper()
	out, _ := outbox.New(nil)
	var id uuid.UUID
	err := pgx.BeginFunc(context.Background(), env.Pool, func(tx pgx.Tx) error {
		e, err := out.Enqueue(context.Background(), tx, outbox.Message{Destination: crm.SalesChat, Type: "chat.note",
			OrderingKey: deal, Payload: []byte(fmt.Sprintf(`{"deal":%q,"text":"follow up"}`, deal))})
		id = e.ID
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// waitStatus waits until the dispatcher has brought a message to status,
// observing the row (bounded: the test's browser context has 60 s).
func waitStatus(t *testing.T, env *storm.Env, id uuid.UUID, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var s string
		if err := env.Pool.QueryRow(ctx, `SELECT status FROM outboxd.outbox_messages WHERE id = $1`, id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		if s == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("message %s is %s, not %s", id, s, want)
		case <-tick.C:
		}
	}
}

func paused(t *testing.T, env *storm.Env, name string) bool {
	t.Helper()
	var p bool
	err := env.Pool.QueryRow(context.Background(), `SELECT coalesce((SELECT paused FROM outboxd.outbox_destinations WHERE name = $1), false)`, name).Scan(&p)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pageState describes what the browser shows, for a failed step: its
// address and the start of its text, with a screenshot beside the others.
func pageState(browser context.Context, shots, step string) string {
	ctx, cancel := context.WithTimeout(browser, 5*time.Second)
	defer cancel()
	at, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return fmt.Sprintf("(the page could not be read: %v)", err)
	}
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if len(body) > 1500 {
		body = body[:1500] + " ..."
	}
	if buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(filepath.Join(shots, "failed-"+strings.ReplaceAll(step, " ", "-")+".png"), buf, 0o644)
	}
	return fmt.Sprintf("page at %s shows:\n%s", at, body)
}
