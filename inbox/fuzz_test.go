package inbox_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
)

// The receiver's request handling gets garbage (paths, methods, headers,
// bodies): no panic and never a 5xx, since nothing unauthenticated reaches
// the database. The pool points nowhere, which proves that too. Metrics are
// on: a label made of request bytes would panic on invalid UTF-8, and
// unknown sources must share one series.
func FuzzReceiverRequests(f *testing.F) {
	f.Add("/webhooks/stripe", "POST", "t=1,v1=00", []byte(`{"id":"evt_1"}`))
	f.Add("/webhooks/github", "POST", "sha256=00", []byte("Hello"))
	f.Add("/webhooks/", "GET", "", []byte{})
	f.Add("/webhooks/nope", "PUT", "v1,", bytes.Repeat([]byte("x"), 3000))
	f.Add("/webhooks/%FF", "POST", "", []byte{})
	f.Add("/webhooks/..%2fstripe", "POST", "t=1,v1=00", []byte(`{"id":"evt_1"}`))
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		f.Fatal(err)
	}
	defer pool.Close()
	in, _ := inbox.New(nil)
	stripe, _ := verify.Stripe("whsec_x")
	github, _ := verify.GitHub("s")
	handle := func(context.Context, pgx.Tx, *inbox.Delivery) error { return nil }
	reg := prometheus.NewRegistry()
	metrics, err := inbox.NewMetrics(reg)
	if err != nil {
		f.Fatal(err)
	}
	rc, err := inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{Sources: []inbox.Source{
		{Name: "stripe", Verifier: stripe, Handle: handle, MaxBody: 2048},
		{Name: "github", Verifier: github, Handle: handle},
	}, Metrics: metrics, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path, method, sig string, body []byte) {
		r, err := http.NewRequest(method, "http://x"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a server could receive
		}
		r.Header.Set("Stripe-Signature", sig)
		r.Header.Set("X-Hub-Signature-256", sig)
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s with signature %q: %d", method, path, sig, w.Code)
		}
		// source label values: stripe, github, unknown; never the path.
		if n := testutil.CollectAndCount(reg, "outboxd_webhooks_total"); n > 2*3+3 {
			t.Fatalf("%d series after %s", n, path)
		}
	})
}
