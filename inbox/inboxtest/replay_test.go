package inboxtest_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/inboxtest"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func signed(id string) inboxtest.Request {
	return func() *http.Request {
		body := []byte(`{"email":"ada@example.com"}`)
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(whsec, "whsec_"))
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + ts + "."))
		m.Write(body)
		r, _ := http.NewRequest(http.MethodPost, "/webhooks/forms", bytes.NewReader(body))
		r.Header.Set("Webhook-Id", id)
		r.Header.Set("Webhook-Timestamp", ts)
		r.Header.Set("Webhook-Signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
		return r
	}
}

// subject is a real receiver whose handler writes a contact (a
// compare-and-swap on the email) and, when broken, also "sends an email"
// by counting outside the transaction, as a direct API call would.
type subject struct {
	pool   *pgxpool.Pool
	in     *inbox.Inbox
	rc     *inbox.Receiver
	sent   atomic.Int64
	rb     inboxtest.Rollback
	broken bool
}

func newSubject(t *testing.T, broken bool) *subject {
	t.Helper()
	s := &subject{pool: pgtest.Pool(t), broken: broken}
	if _, err := s.pool.Exec(context.Background(), `CREATE TABLE contacts (email text PRIMARY KEY, welcomed boolean NOT NULL DEFAULT false)`); err != nil {
		t.Fatal(err)
	}
	s.in, _ = inbox.New(nil)
	v, _ := verify.StandardWebhooks(whsec)
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		tag, err := tx.Exec(ctx, `INSERT INTO contacts (email) VALUES ('ada@example.com') ON CONFLICT DO NOTHING`)
		if err != nil {
			return err
		}
		if s.broken {
			s.sent.Add(1) // the welcome email, sent directly: not undone by a rollback
			return nil
		}
		if tag.RowsAffected() == 1 { // the email goes with the transaction (an outbox in real code)
			_, err = tx.Exec(ctx, `UPDATE contacts SET welcomed = true WHERE email = 'ada@example.com'`)
		}
		return err
	}
	var err error
	s.rc, err = inbox.NewReceiver(s.pool, s.in, &inbox.ReceiverConfig{Sources: []inbox.Source{
		{Name: "forms", Verifier: v, Handle: s.rb.Wrap(handle)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *subject) snap(t testing.TB) any {
	var contacts, welcomed int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE welcomed) FROM contacts`).Scan(&contacts, &welcomed); err != nil {
		t.Fatal(err)
	}
	return [3]int64{int64(contacts), int64(welcomed), s.sent.Load()}
}

// Item 20: DeliverTwice passes a handler with an effect outside the
// transaction (the receiver dedupes before it runs); Replay and
// DeliverAfterRollback run the handler twice for one event and catch it,
// while the idempotent handler passes all three.
func TestHandlerRunTwiceCatchesEffectsOutsideTheTransaction(t *testing.T) {
	t.Parallel()
	for _, broken := range []bool{false, true} {
		s := newSubject(t, broken)
		f := &fakeT{TB: t}
		run(f, func() { inboxtest.DeliverTwice(f, s.rc, signed("evt_twice"), s.snap) })
		if f.failed {
			t.Fatalf("DeliverTwice, broken=%v: %s", broken, f.msg)
		}

		s = newSubject(t, broken)
		f = &fakeT{TB: t}
		run(f, func() {
			inboxtest.Replay(f, s.rc, signed("evt_replay"), inboxtest.Forget(s.pool, s.in, "forms", "evt_replay"), s.snap)
		})
		if f.failed != broken {
			t.Fatalf("Replay, broken=%v: failed=%v %s", broken, f.failed, f.msg)
		}

		s = newSubject(t, broken)
		f = &fakeT{TB: t}
		var state any
		run(f, func() { state = s.rb.DeliverAfterRollback(f, s.rc, signed("evt_rollback"), s.snap) })
		if f.failed != broken {
			t.Fatalf("DeliverAfterRollback, broken=%v: failed=%v %s", broken, f.failed, f.msg)
		}
		if !broken && state != [3]int64{1, 1, 0} {
			t.Fatalf("state after the rollback and two deliveries: %v", state)
		}
	}
}
