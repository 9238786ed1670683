package inbox_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/internal/syncbuf"
)

// failingBody fails every read, as a body cut off or read past the
// server's ReadTimeout does.
type failingBody struct{ reads int }

func (f *failingBody) Read([]byte) (int, error) {
	f.reads++
	return 0, errors.New("read tcp: i/o timeout")
}

func (*failingBody) Close() error { return nil }

// A body that cannot be read (cut off, or dribbled past ReadTimeout) is
// answered 503 with Retry-After: the event was not processed and its
// sender should try again, where 400 said never to. A Content-Length over
// the source's MaxBody is answered 413 before any of the body is read. A
// request with the wrong method is counted too. Each is sent twice.
func TestReceiverUnreadableAndAnnouncedOversizedBodies(t *testing.T) {
	t.Parallel()
	b := newReceiver(t, pgtest.Pool(t))
	for range 2 {
		body := &failingBody{}
		req := httptest.NewRequest(http.MethodPost, "/webhooks/crm", nil)
		req.Body = body
		rec := httptest.NewRecorder()
		b.rc.ServeHTTP(rec, req)
		if rec.Code != 503 || rec.Header().Get("Retry-After") != "7" || !strings.Contains(rec.Body.String(), "could not read body") {
			t.Fatalf("unreadable body: %d %v %s", rec.Code, rec.Header(), rec.Body)
		}

		huge := &failingBody{}
		req = httptest.NewRequest(http.MethodPost, "/webhooks/crm", nil)
		req.Body, req.ContentLength = huge, 10_000_000_000
		rec = httptest.NewRecorder()
		b.rc.ServeHTTP(rec, req)
		if rec.Code != 413 || huge.reads != 0 {
			t.Fatalf("Content-Length 10 GB: %d after %d reads, want 413 unread", rec.Code, huge.reads)
		}

		req = httptest.NewRequest(http.MethodGet, "/webhooks/crm", io.NopCloser(strings.NewReader("{}")))
		rec = httptest.NewRecorder()
		b.rc.ServeHTTP(rec, req)
		if rec.Code != 405 {
			t.Fatalf("GET: %d", rec.Code)
		}
	}
	for outcome, want := range map[string]float64{"unreadable": 2, "too_large": 2, "wrong_method": 2} {
		if got := testutil.ToFloat64(counter(t, b, "crm", outcome)); got != want {
			t.Errorf("%s counter %v, want %v", outcome, got, want)
		}
	}
	if s := b.state(t); s != (state{}) {
		t.Fatalf("wrote %+v", s)
	}
}

// A flood of unauthenticated requests writes one log line per source per
// 10 s, which counts the others next time: 2,000 bad signatures wrote
// 2,000 lines (654 KB) in a trial.
func TestBadSignaturesAreLoggedOncePerWindow(t *testing.T) {
	t.Parallel()
	logs := &syncbuf.Buffer{}
	b := handlerReceiver(t, func(context.Context, pgx.Tx, *inbox.Delivery) error { return nil },
		inbox.ReceiverConfig{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	for range 20 {
		if r := b.post(t, "crm", "evt_forged", []byte(`{}`), time.Now(), func(r *http.Request) { r.Header.Set("Webhook-Signature", "v1,AAAA") }); r.code != 401 {
			t.Fatalf("forged: %+v", r)
		}
	}
	if n := strings.Count(logs.String(), "verification failed"); n != 1 {
		t.Fatalf("%d lines for 20 forged requests within 10 s, want 1:\n%s", n, logs)
	}
}
