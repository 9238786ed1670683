// Package storm runs the crm-deals demo: it starts the CRM service, the
// dispatcher and the fake downstream on one database, plays a scripted storm
// of real signed webhooks (duplicates, concurrent duplicates, events out of
// order, bad signatures, oversized bodies, a downstream outage), and checks
// that every invariant holds.
package storm

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/examples/crm-deals/crm"
	"github.com/outboxd/outboxd/examples/crm-deals/downstream"
	"github.com/outboxd/outboxd/worker"
)

// Secrets used by the demo's senders and the CRM.
var Secrets = crm.Secrets{
	Forms:    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	Payments: "whsec_payments_demo_secret",
	Calendar: "calendar-demo-secret",
	API:      "demo-api-token",
}

// Env is everything the demo runs.
type Env struct {
	Pool       *pgxpool.Pool
	CRM        *crm.Service
	Downstream *downstream.Server
	Dispatcher *worker.Dispatcher
	crmSrv     *httptest.Server
	downSrv    *httptest.Server
	send       *sender
	out        io.Writer
	// cancelStart ends the dispatcher's Start context, after its Stop.
	cancelStart context.CancelFunc
}

// Start builds the demo on a database that has outboxd's migrations.
func Start(ctx context.Context, pool *pgxpool.Pool, out io.Writer) (*Env, error) {
	if err := crm.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := crm.New(pool, Secrets, nil, quiet)
	if err != nil {
		return nil, err
	}
	e := &Env{Pool: pool, CRM: svc, Downstream: downstream.New(), out: out}
	e.downSrv = httptest.NewServer(e.Downstream)
	e.crmSrv = httptest.NewServer(svc)
	email, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: e.downSrv.URL + "/email/send", Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	chat, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: e.downSrv.URL + "/chat/post", Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	e.Dispatcher, err = worker.New(pool, &worker.Config{
		Destinations: map[string]dispatch.Destination{crm.EmailAPI: email, crm.SalesChat: chat},
		// Short backoff so that the demo's outage heals in seconds.
		Retry:  worker.RetryPolicy{Base: 200 * time.Millisecond, Max: time.Second},
		Logger: quiet,
	})
	if err != nil {
		e.Close()
		return nil, err
	}
	// As in outboxd serve: ctx (the demo's signal) ends the start's own
	// work (a query that may wait on a lock), but once started it must not
	// cut deliveries off: Close stops the dispatcher gracefully, then ends
	// Start's context.
	startCtx, cancelStart := context.WithCancel(context.WithoutCancel(ctx))
	e.cancelStart = cancelStart
	signalled := context.AfterFunc(ctx, cancelStart)
	err = e.Dispatcher.Start(startCtx)
	signalled()
	if err != nil {
		e.Close()
		return nil, err
	}
	signer, err := dispatch.NewSigner(Secrets.Forms)
	if err != nil {
		e.Close()
		return nil, err
	}
	e.send = &sender{baseURL: e.crmSrv.URL, forms: signer, paymentsKey: Secrets.Payments, calendarKey: Secrets.Calendar,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	return e, nil
}

// CRMURL is where the CRM serves its webhooks and API.
func (e *Env) CRMURL() string { return e.crmSrv.URL }

// Close stops everything.
func (e *Env) Close() {
	if e.Dispatcher != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = e.Dispatcher.Stop(ctx)
		cancel()
	}
	if e.cancelStart != nil {
		e.cancelStart()
	}
	if e.crmSrv != nil {
		e.crmSrv.Close()
	}
	if e.downSrv != nil {
		e.downSrv.Close()
	}
}

func (e *Env) logf(format string, args ...any) {
	fmt.Fprintf(e.out, format+"\n", args...)
}
