package inbox_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// A negative bound that would refuse every request is refused at
// construction: a Source.MaxBody of -1 answered every event 413, which
// senders never retry (a library trial's), and a negative RetryAfter was
// sent as "Retry-After: -5".
func TestNewReceiverRefusesNegativeBounds(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	in, _ := inbox.New(nil)
	v, _ := verify.StandardWebhooks(secret)
	noop := func(context.Context, pgx.Tx, *inbox.Delivery) error { return nil }
	for _, tc := range []struct {
		name string
		cfg  inbox.ReceiverConfig
		want string
	}{
		{"MaxBody", inbox.ReceiverConfig{Sources: []inbox.Source{{Name: "crm", Verifier: v, Handle: noop, MaxBody: -1}}},
			"inbox: source crm: MaxBody (-1) must be positive (0: DefaultMaxBody, 1 MiB)"},
		{"RetryAfter", inbox.ReceiverConfig{RetryAfter: -5 * time.Second, Sources: []inbox.Source{{Name: "crm", Verifier: v, Handle: noop}}},
			"inbox: ReceiverConfig.RetryAfter (-5s) must be positive (0: the default, 5 s)"},
	} {
		if _, err := inbox.NewReceiver(pool, in, &tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// Retry-After is whole seconds: a RetryAfter between them is rounded up,
// never down (1.5 s was sent as 1, 500 ms as 0: a retry sooner than
// asked), and the default is 5 s, the body bound 1 MiB, the requests
// served at once 128 and the forged-request log line one per source per
// 10 s, as docs/receiving.md says.
func TestRetryAfterIsRoundedUp(t *testing.T) {
	t.Parallel()
	fail := func(context.Context, pgx.Tx, *inbox.Delivery) error { return context.DeadlineExceeded }
	for _, tc := range []struct {
		retryAfter time.Duration
		want       string
	}{{0, "5"}, {500 * time.Millisecond, "1"}, {1500 * time.Millisecond, "2"}, {3 * time.Second, "3"}, {math.MaxInt64, "9223372037"}} {
		b := handlerReceiver(t, fail, inbox.ReceiverConfig{RetryAfter: tc.retryAfter})
		for range 2 { // the sender's retry gets the same answer
			if r := b.post(t, "crm", "evt_ra", []byte(`{}`), time.Now(), nil); r.code != 503 || r.header.Get("Retry-After") != tc.want {
				t.Errorf("RetryAfter %s: %d, Retry-After %q, want 503 and %q", tc.retryAfter, r.code, r.header.Get("Retry-After"), tc.want)
			}
		}
		if tc.retryAfter == 0 && inbox.SourceMaxBody(b.rc, "crm") != 1<<20 {
			t.Errorf("default MaxBody %d, want 1 MiB", inbox.SourceMaxBody(b.rc, "crm"))
		}
		if tc.retryAfter == 0 && inbox.LogEvery(b.rc) != 10*time.Second {
			t.Errorf("one line per source per %s, want 10 s", inbox.LogEvery(b.rc))
		}
		if tc.retryAfter == 0 && inbox.MaxConcurrent(b.rc) != 128 {
			t.Errorf("default MaxConcurrent %d, want 128", inbox.MaxConcurrent(b.rc))
		}
	}
}

// A rejection's reason is stored cut to 1,000 bytes, in the event and in
// its failure row, as docs/receiving.md says (a handler's error may hold
// a whole response body).
func TestRejectionReasonsAreCut(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 1500) // 3,000 bytes
	handle := func(context.Context, pgx.Tx, *inbox.Delivery) error { return inbox.Permanent(errors.New(long)) }
	b := handlerReceiver(t, handle, inbox.ReceiverConfig{})
	for range 2 { // the retry is rejected the same way, and stores the same
		if r := b.post(t, "crm", "evt_long", []byte(`{}`), time.Now(), nil); r.code != 422 {
			t.Fatalf("%+v", r)
		}
	}
	ctx := context.Background()
	ev, err := b.inbox.Get(ctx, b.pool, "crm", "evt_long")
	if err != nil || len(ev.Reason) != 1000 || !strings.HasPrefix(long, ev.Reason) {
		t.Fatalf("stored reason of %d bytes (%v), want the first 1,000", len(ev.Reason), err)
	}
	fails, err := b.inbox.Failures(ctx, b.pool, "crm", "evt_long", 1)
	if err != nil || len(fails) != 1 || len(fails[0].Reason) != 1000 || fails[0].Count != 2 {
		t.Fatalf("failure rows %+v (%v), want one with 1,000 bytes of reason, counted twice", fails, err)
	}
}
