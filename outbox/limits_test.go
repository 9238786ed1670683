package outbox_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/outboxd/outboxd/outbox"
)

// random returns n bytes of hex: incompressible, so PostgreSQL cannot
// squeeze it under the btree limit.
func random(n int) string {
	b := make([]byte, n/2+1)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// The documented limits (Message's field docs): destination and
// CausedBy.Source at most 200 bytes, idempotency and ordering keys at most
// 2000. At the limit every field stores (all at once, the worst case for
// the indexes they share); one byte over is ErrInvalidMessage naming the
// field, never quoting it, where it was a database error before (54000,
// the caller's transaction aborted) or, compressible, stored.
func TestFieldLengthLimits200And2000(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	full := outbox.Message{
		Destination: random(200), OrderingKey: random(2000), IdempotencyKey: random(2000),
		CausedBy: &outbox.EventRef{Source: random(200), EventID: "evt_1"},
	}
	if _, err := b.outbox.Enqueue(ctx, b.pool, full); err != nil {
		t.Fatalf("every field at its limit: %v", err)
	}
	for name, over := range map[string]func(m *outbox.Message){
		"destination":     func(m *outbox.Message) { m.Destination = random(201) },
		"ordering key":    func(m *outbox.Message) { m.OrderingKey = random(2001) },
		"idempotency key": func(m *outbox.Message) { m.IdempotencyKey = random(2001) },
		"CausedBy source": func(m *outbox.Message) { m.CausedBy = &outbox.EventRef{Source: random(201), EventID: "evt_1"} },
		// Compressible: PostgreSQL would have stored this one.
		"idempotency key (compressible)": func(m *outbox.Message) { m.IdempotencyKey = strings.Repeat("k", 100_000) },
	} {
		m := outbox.Message{Destination: "x", IdempotencyKey: "k-" + name}
		over(&m)
		_, err := b.outbox.Enqueue(ctx, b.pool, m)
		field := strings.TrimSuffix(name, " (compressible)")
		if !errors.Is(err, outbox.ErrTooLong) || !errors.Is(err, outbox.ErrInvalidMessage) || !strings.Contains(err.Error(), field) || len(err.Error()) > 200 {
			t.Errorf("%s over its limit: %v", name, err)
		}
		if _, err := b.outbox.EnqueueBatch(ctx, b.pool, []outbox.Message{{Destination: "x"}, m}); !errors.Is(err, outbox.ErrInvalidMessage) {
			t.Errorf("batch with %s over its limit: %v", name, err)
		}
	}
	if n := b.count(t); n != 1 {
		t.Errorf("%d messages stored; want the one at the limits", n)
	}
	if !errors.Is(outbox.ErrTooLong, outbox.ErrInvalidMessage) {
		t.Error("ErrTooLong is not an ErrInvalidMessage")
	}
}

// A causing event id of any length is stored as the inbox keys the event
// (beyond 200 bytes, "sha256:" and its digest): an authentic event with a
// 10 KB id must not fail its handler's enqueue on every retry (54000, which
// the receiver answers 422: the event lost). Its derived key is that of
// the original id, so enqueueing again finds the message.
func TestLongCausingEventIDIsStoredByItsHash(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	long := "evt_" + random(10_000)
	msg := outbox.Message{Destination: "crm", Type: "deal.won", CausedBy: &outbox.EventRef{Source: "stripe", EventID: long}}
	first, err := b.outbox.Enqueue(ctx, b.pool, msg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.outbox.Enqueue(ctx, b.pool, msg)
	if err != nil || !again.Existing || again.ID != first.ID {
		t.Fatalf("second enqueue: %+v %v; want the first message found", again, err)
	}
	if first.IdempotencyKey != outbox.DeriveIdempotencyKey(*msg.CausedBy, msg.Type, "") {
		t.Errorf("key %s is not derived from the original id", first.IdempotencyKey)
	}
	got, err := b.outbox.Get(ctx, b.pool, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(long))
	if want := "sha256:" + hex.EncodeToString(sum[:]); got.CausedBy == nil || got.CausedBy.EventID != want || got.CausedBy.Source != "stripe" {
		t.Errorf("caused by %+v; want stripe %s", got.CausedBy, want)
	}
	if n := b.count(t); n != 1 {
		t.Errorf("%d messages; want 1", n)
	}
}

// A field PostgreSQL cannot store as text (a NUL byte, invalid UTF-8), a
// destination with a control character, or a key that cannot be sent as a
// header is ErrInvalidMessage naming the field, never quoting it: the
// statement is not sent, so the caller's transaction goes on (it was
// aborted with 22021 before, and the NUL echoed in the error).
func TestFieldsThatAreNotText(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	tx := b.begin(t)
	for name, bad := range map[string]func(m *outbox.Message){
		"destination":                           func(m *outbox.Message) { m.Destination = "de\x00st" },
		"type":                                  func(m *outbox.Message) { m.Type = "t\xff" },
		"ordering key":                          func(m *outbox.Message) { m.OrderingKey = "k\x00" },
		"idempotency key":                       func(m *outbox.Message) { m.IdempotencyKey = "\xc3\x28" },
		"step":                                  func(m *outbox.Message) { m.Step = "s\x00" },
		"CausedBy source":                       func(m *outbox.Message) { m.CausedBy = &outbox.EventRef{Source: "s\x00", EventID: "e"} },
		"CausedBy event id":                     func(m *outbox.Message) { m.CausedBy = &outbox.EventRef{Source: "s", EventID: "e\xfe"} },
		"destination holds a control character": func(m *outbox.Message) { m.Destination = "de\nst" },
		"idempotency key holds a control character":         func(m *outbox.Message) { m.IdempotencyKey = "k\r\nX-Evil: 1" },
		"idempotency key holds a control character (a tab)": func(m *outbox.Message) { m.IdempotencyKey = "k\t" },
		"destination holds a control character (a tab)":     func(m *outbox.Message) { m.Destination = "crm\t" },
		"idempotency key begins or ends with a space":       func(m *outbox.Message) { m.IdempotencyKey = "k " },
		// The key is IdempotencyKey: one given as a header dedupes
		// nothing (a trial's two sends with one such header reached the
		// sink twice, under two keys).
		"header Idempotency-Key is the message's idempotency key": func(m *outbox.Message) { m.Headers = http.Header{"idempotency-key": {"order-42"}} },
		// Stored as JSON, it would be altered (\xff became U+FFFD).
		"header X-Bin's value": func(m *outbox.Message) { m.Headers = http.Header{"X-Bin": {"a\xffb"}} },
	} {
		m := outbox.Message{Destination: "x", Payload: []byte(`{}`)}
		bad(&m)
		_, err := b.outbox.Enqueue(ctx, tx, m)
		if !errors.Is(err, outbox.ErrInvalidMessage) || !strings.Contains(err.Error(), ": "+strings.TrimSuffix(name, " (a tab)")) || !utf8.ValidString(err.Error()) || strings.ContainsAny(err.Error(), "\x00\n\r") {
			t.Errorf("%s: %q", name, err)
		}
		// What the data makes unstorable is ErrUnstorable (the inbox's
		// receiver answers 422); what the code gets wrong is not.
		if data := strings.Contains(err.Error(), "is not text PostgreSQL can store"); errors.Is(err, outbox.ErrUnstorable) != data {
			t.Errorf("%s: errors.Is(ErrUnstorable) = %v, want %v: %q", name, !data, data, err)
		}
	}
	if _, err := b.outbox.Enqueue(ctx, tx, outbox.Message{Destination: "x", Payload: []byte(`{}`)}); err != nil {
		t.Fatalf("the transaction after the refusals: %v", err)
	}
	// Text beyond ASCII is text: stored.
	if _, err := b.outbox.Enqueue(ctx, tx, outbox.Message{Destination: "crm-é", Type: "offre.signée", OrderingKey: "client-ü",
		IdempotencyKey: "commande-ñ 7", Step: "étape", Payload: []byte(`{}`)}); err != nil {
		t.Fatalf("UTF-8 text: %v", err)
	}
}

// A payload over Config.MaxPayload (1 MiB by default) is ErrInvalidMessage
// before anything is sent: a trial's 300 MB message was stored and then
// held a dispatcher at 657 MB. The bound is inclusive, negative lifts it,
// and the caller's transaction goes on.
func TestPayloadBound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	tx := b.begin(t)
	msg := func(n int) outbox.Message {
		return outbox.Message{Destination: "x", Payload: bytes.Repeat([]byte("a"), n), Headers: http.Header{"Content-Type": {"text/plain"}}}
	}
	if _, err := b.outbox.Enqueue(ctx, tx, msg(outbox.DefaultMaxPayload)); err != nil {
		t.Fatalf("1 MiB: %v", err)
	}
	_, err := b.outbox.Enqueue(ctx, tx, msg(outbox.DefaultMaxPayload+1))
	if !errors.Is(err, outbox.ErrTooLong) || !errors.Is(err, outbox.ErrUnstorable) || !errors.Is(err, outbox.ErrInvalidMessage) ||
		!strings.Contains(err.Error(), "payload is 1048577 bytes, at most 1048576 (Config.MaxPayload)") {
		t.Fatalf("1 MiB + 1: %v", err)
	}
	unbounded, err := outbox.New(&outbox.Config{MaxPayload: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unbounded.Enqueue(ctx, tx, msg(2<<20)); err != nil {
		t.Fatalf("2 MiB with no bound: %v", err)
	}
	small, err := outbox.New(&outbox.Config{MaxPayload: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.EnqueueBatch(ctx, tx, []outbox.Message{msg(10), msg(11)}); !errors.Is(err, outbox.ErrInvalidMessage) {
		t.Fatalf("a batch with 11 bytes under a bound of 10: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the transaction after the refusals: %v", err)
	}
	var n int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM outboxd.outbox_messages`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d messages stored (%v), want the two within their bounds", n, err)
	}
}

// A message's headers take at most 64 KiB as an HTTP request carries
// them ("Name: value" and a line break each): at the bound it is stored,
// a byte over is ErrInvalidMessage saying so (a 1.3 MB header set was
// stored, and every attempt answered 431 until it died).
func TestHeadersAtMost64KiB(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	value := func(total int) http.Header {
		// "X-Pad: " + value + "\r\n": len("X-Pad") + 4 bytes around the value.
		return http.Header{"X-Pad": {strings.Repeat("v", total-len("X-Pad")-4)}}
	}
	if _, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "x", Headers: value(64 << 10)}); err != nil {
		t.Fatalf("headers of 64 KiB: %v", err)
	}
	_, err := b.outbox.Enqueue(ctx, b.pool, outbox.Message{Destination: "x", Headers: value(64<<10 + 1)})
	// Data over a bound (ErrTooLong, ErrUnstorable): an inbox handler's
	// event is refused (422), not retried for days.
	if !errors.Is(err, outbox.ErrTooLong) || !errors.Is(err, outbox.ErrUnstorable) ||
		!strings.Contains(err.Error(), "header block as sent is 65537 bytes, at most 65536 (64 KiB") {
		t.Fatalf("headers one byte over 64 KiB: %v", err)
	}
}
