package inbox_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/inboxtest"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// A receiver without sources answers 404 to everything, forever: nil and
// empty configs are refused, naming the field.
func TestNewReceiverRequiresSources(t *testing.T) {
	pool := pgtest.Pool(t)
	in, _ := inbox.New(nil)
	for name, cfg := range map[string]*inbox.ReceiverConfig{"nil": nil, "empty": {}} {
		rc, err := inbox.NewReceiver(pool, in, cfg)
		if err == nil || !strings.Contains(err.Error(), "ReceiverConfig.Sources is required") {
			t.Errorf("%s config: %v, %v; want an error naming ReceiverConfig.Sources", name, rc, err)
		}
	}
}

// An async job inserted into another schema than the inbox's is never
// worked by the inbox's River: refused at wiring time.
func TestNewReceiverRiverSchema(t *testing.T) {
	pool := pgtest.Pool(t)
	in, _ := inbox.New(nil)
	v, _ := verify.StandardWebhooks(secret)
	noop := func(context.Context, pgx.Tx, *inbox.Delivery) error { return nil }
	for schema, ok := range map[string]bool{"elsewhere": false, "outboxd": true, "": true} {
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		_, err = inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{
			Sources: []inbox.Source{{Name: "forms", Verifier: v, Handle: noop, Async: true}}, River: client,
		})
		if ok != (err == nil) {
			t.Errorf("River schema %q: %v", schema, err)
		}
	}
	// A client variable left nil is no River, as it was when the field
	// was a pointer: an error naming the field, not a panic.
	var unset *river.Client[pgx.Tx]
	_, err := inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{
		Sources: []inbox.Source{{Name: "forms", Verifier: v, Handle: noop, Async: true}}, River: unset,
	})
	if err == nil || !strings.Contains(err.Error(), "ReceiverConfig.River is required") {
		t.Fatalf("nil *river.Client: %v", err)
	}
}

// For fails at wiring time on a source the receiver lacks, instead of
// returning a handler that answers 404 forever; a known source's handler
// serves, with the defaults of a config that set only Sources.
func TestForUnknownSource(t *testing.T) {
	pool := pgtest.Pool(t)
	in, _ := inbox.New(nil)
	v, _ := verify.StandardWebhooks(secret)
	rc, err := inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{Sources: []inbox.Source{{Name: "crm", Verifier: v,
		Handle: func(context.Context, pgx.Tx, *inbox.Delivery) error { return inbox.Transient(errors.New("CRM down")) }}}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := rc.For("stripe")
	// The configured names (not secret) make the typo plain.
	if !errors.Is(err, inbox.ErrUnknownSource) || err.Error() != `inbox: unknown source "stripe" (sources: crm)` || h != nil {
		t.Fatalf("For(stripe) = %v, %v; want ErrUnknownSource naming it and the configured sources", h, err)
	}
	h, err = rc.For("crm")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b := &rbundle{srv: srv}
	for i := 0; i < 2; i++ { // the sender's retry meets the same answer, and nothing stays
		r := b.post(t, "", "evt_for", []byte(`{}`), time.Now(), nil)
		if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "5" {
			t.Fatalf("delivery %d, transient failure through For: %d %q %s; want 503 with the default Retry-After 5", i+1, r.code, r.header.Get("Retry-After"), r.body)
		}
		if _, err := in.Get(context.Background(), pool, "crm", "evt_for"); !errors.Is(err, inbox.ErrNotFound) {
			t.Fatalf("delivery %d: the event is stored after a transient failure: %v", i+1, err)
		}
	}
}

// Delivery.AddRefs writes the delivery's own event, in the handler's
// transaction; a second delivery is a duplicate that leaves the references
// as the first left them.
func TestDeliveryAddRefs(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	in, _ := inbox.New(nil)
	v, _ := verify.StandardWebhooks(secret)
	rc, err := inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{Sources: []inbox.Source{{Name: "crm", Verifier: v,
		Handle: func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
			return d.AddRefs(ctx, tx, map[string]string{"email": "ada@example.com", "event": d.ID})
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	b := &rbundle{srv: srv}
	long := "evt_" + strings.Repeat("x", 300) // stored under its hash: AddRefs must find it too
	for _, id := range []string{"evt_refs", long} {
		after := inboxtest.DeliverTwice(t, rc, func() *http.Request {
			return b.request(t, "crm", id, []byte(`{"email":"ada@example.com"}`), time.Now())
		}, func(t testing.TB) any {
			ev, err := in.Get(ctx, pool, "crm", id)
			if err != nil {
				t.Fatal(err)
			}
			return ev.Refs
		})
		if refs := after.(map[string]string); refs["email"] != "ada@example.com" || refs["event"] != id {
			t.Fatalf("refs after one delivery of %.20s: %v", id, refs)
		}
	}
	found, err := in.FindByRef(ctx, pool, "event", "evt_refs", 10)
	if err != nil || len(found) != 1 {
		t.Fatalf("FindByRef: %d events, %v", len(found), err)
	}

	var zero inbox.Delivery
	if err := zero.AddRefs(ctx, pool, map[string]string{"a": "b"}); err == nil || !strings.Contains(err.Error(), "not made by a Receiver or Inbox.NewDelivery") {
		t.Fatalf("AddRefs on a Delivery no Receiver made: %v", err)
	}
}

// A handler that calls Delivery.AddRefs can be unit-tested without a
// Receiver: Inbox.NewDelivery makes its Delivery, whose AddRefs writes the
// recorded event's references in the test's transaction.
func TestNewDeliveryForHandlerTests(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	in, _ := inbox.New(nil)
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		return d.AddRefs(ctx, tx, map[string]string{"deal": string(d.Body)})
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := in.Record(ctx, tx, inbox.Event{Source: "crm", ID: "evt_unit"}); err != nil {
			return err
		}
		d := in.NewDelivery("crm", "evt_unit")
		d.Body = []byte("D-42")
		return handle(ctx, tx, d)
	})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := in.Get(ctx, pool, "crm", "evt_unit")
	if err != nil || ev.Refs["deal"] != "D-42" {
		t.Fatalf("refs written by the handler under test: %v, %v", ev.Refs, err)
	}
}
