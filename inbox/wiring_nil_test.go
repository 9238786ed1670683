package inbox_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"

	"github.com/outboxd/outboxd/internal/syncbuf"
)

// A pool or verifier variable left nil is refused at construction, naming
// it, not accepted to panic on the first POST.
func TestNewReceiverRefusesTypedNils(t *testing.T) {
	pool := pgtest.Pool(t)
	in, _ := inbox.New(nil)
	v, _ := verify.StandardWebhooks(secret)
	noop := func(context.Context, pgx.Tx, *inbox.Delivery) error { return nil }
	var unsetPool *pgxpool.Pool
	_, err := inbox.NewReceiver(unsetPool, in, &inbox.ReceiverConfig{Sources: []inbox.Source{{Name: "crm", Verifier: v, Handle: noop}}})
	if err == nil || !strings.Contains(err.Error(), "pool") {
		t.Errorf("nil *pgxpool.Pool: %v, want an error naming the pool", err)
	}
	var unsetVerifier *ownVerifier
	_, err = inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{Sources: []inbox.Source{{Name: "crm", Verifier: unsetVerifier, Handle: noop}}})
	if err == nil || !strings.Contains(err.Error(), "Verifier is required") {
		t.Errorf("nil verifier: %v, want an error naming Verifier", err)
	}
}

// ownVerifier is a user's Verifier type.
type ownVerifier struct{ secret string }

func (o *ownVerifier) Verify(*http.Request, []byte, time.Time) (verify.Meta, error) {
	return verify.Meta{}, errors.New(o.secret) // panics on a nil *ownVerifier
}

// A per-source key of the inbox's Config that names none of the
// receiver's sources is likely misspelled (a redaction that never
// applies stores a secret): NewReceiver warns, naming it.
func TestNewReceiverWarnsAboutUnknownSourceKeys(t *testing.T) {
	pool := pgtest.Pool(t)
	in, err := inbox.New(&inbox.Config{
		SourceRedactHeaders: map[string][]string{"strpie": {"X-Stripe-Secret"}, "stripe": {"X-Other"}},
		SourceKeepHeaders:   map[string][]string{"stripe": {"X-Request-Key"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := verify.StandardWebhooks(secret)
	noop := func(context.Context, pgx.Tx, *inbox.Delivery) error { return nil }
	logs := &syncbuf.Buffer{}
	_, err = inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{
		Sources: []inbox.Source{{Name: "stripe", Verifier: v, Handle: noop}},
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "SourceRedactHeaders") || !strings.Contains(out, "strpie") {
		t.Fatalf("no warning naming the misspelled key:\n%s", out)
	}
	if strings.Contains(out, "SourceKeepHeaders") {
		t.Fatalf("a warning about a key that names a source:\n%s", out)
	}
}
