package inbox_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/inboxtest"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

type rbundle struct {
	rc      *inbox.Receiver
	pool    *pgxpool.Pool
	inbox   *inbox.Inbox
	srv     *httptest.Server
	metrics *inbox.Metrics
	// behaviour of the "crm" source's handler: "", "permanent", "transient", "panic"
	mode atomic.Value
}

func newReceiver(t *testing.T, pool *pgxpool.Pool) *rbundle {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS leads (id bigserial PRIMARY KEY, source text, event_id text, email text)`); err != nil {
		t.Fatal(err)
	}
	in, _ := inbox.New(nil)
	ob, _ := outbox.New(nil)
	metrics, err := inbox.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	b := &rbundle{pool: pool, inbox: in, metrics: metrics}
	b.mode.Store("")
	v, _ := verify.StandardWebhooks(secret)
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		if _, err := tx.Exec(ctx, `INSERT INTO leads (source, event_id, email) VALUES ($1, $2, 'ada@example.com')`, d.Source, d.ID); err != nil {
			return err
		}
		if _, err := ob.Enqueue(ctx, tx, outbox.Message{Destination: "email", Type: "welcome", Payload: d.Body,
			CausedBy: &outbox.EventRef{Source: d.Source, EventID: d.ID}}); err != nil {
			return err
		}
		switch b.mode.Load().(string) {
		case "permanent":
			return inbox.Permanent(errors.New("contact list was deleted"))
		case "transient":
			return inbox.Transient(errors.New("CRM API timed out"))
		case "panic":
			panic("nil map in the handler")
		case "too long":
			// A length the outbox refuses, it refuses on every retry.
			_, err := ob.Enqueue(ctx, tx, outbox.Message{Destination: strings.Repeat("d", 201)})
			return err
		case "payload over MaxPayload":
			// A payload built from the event (a body wrapped in an
			// envelope) over the outbox's bound: a trial's 1.5 MiB
			// event got a 503, retried by its sender for days.
			_, err := ob.Enqueue(ctx, tx, outbox.Message{Destination: "email", Payload: bytes.Repeat([]byte("p"), outbox.DefaultMaxPayload+1)})
			return err
		case "headers over 64 KiB":
			_, err := ob.Enqueue(ctx, tx, outbox.Message{Destination: "email", Headers: http.Header{"X-Pad": {strings.Repeat("h", 70<<10)}}})
			return err
		case "not text":
			_, err := ob.Enqueue(ctx, tx, outbox.Message{Destination: "email", OrderingKey: "contact\x00"})
			return err
		case "too long, transient":
			_, err := ob.Enqueue(ctx, tx, outbox.Message{Destination: strings.Repeat("d", 201)})
			return inbox.Transient(err)
		case "no destination":
			// A bug in the handler (or its configuration): retried until
			// the fix is deployed, never a refused event.
			_, err := ob.Enqueue(ctx, tx, outbox.Message{})
			return err
		}
		return d.AddRefs(ctx, tx, map[string]string{"email": "ada@example.com"})
	}
	rc, err := inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{
		Sources: []inbox.Source{
			{Name: "crm", Verifier: v, Handle: handle, MaxBody: 1024},
			{Name: "nometa", Verifier: verify.Func(func(*http.Request, []byte, time.Time) (verify.Meta, error) {
				return verify.Meta{Type: "ping"}, nil
			}), Handle: handle},
		},
		Metrics: metrics, RetryAfter: 7 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	b.rc = rc
	mux := http.NewServeMux()
	mux.Handle("/webhooks/", rc)
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	return b
}

// serveReceiver serves a Receiver of in over pool, with cfg, on a test
// server closed when the test ends.
func serveReceiver(t *testing.T, pool *pgxpool.Pool, in *inbox.Inbox, cfg *inbox.ReceiverConfig) *rbundle {
	t.Helper()
	rc, err := inbox.NewReceiver(pool, in, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := &rbundle{rc: rc, pool: pool, inbox: in}
	b.srv = httptest.NewServer(rc)
	t.Cleanup(b.srv.Close)
	return b
}

type reply struct {
	code   int
	body   string
	header http.Header
}

// request is a Standard Webhooks request to the source, signed at ts.
func (b *rbundle) request(t testing.TB, source, id string, body []byte, ts time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.srv.URL+"/webhooks/"+source, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := dispatch.NewSigner(secret)
	req.Header.Set("Webhook-Id", id)
	req.Header.Set("Webhook-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("Webhook-Signature", signer.Sign(id, ts, body))
	return req
}

// post delivers a Standard Webhooks request signed at ts.
func (b *rbundle) post(t *testing.T, source, id string, body []byte, ts time.Time, mutate func(*http.Request)) reply {
	t.Helper()
	req := b.request(t, source, id, body, ts)
	if mutate != nil {
		mutate(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, body: string(out), header: resp.Header}
}

type state struct{ leads, messages, events, failures int }

func (b *rbundle) state(t *testing.T) state {
	t.Helper()
	var s state
	err := b.pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM leads), (SELECT count(*) FROM outboxd.outbox_messages),
		(SELECT count(*) FROM outboxd.inbox_events), (SELECT count(*) FROM outboxd.inbox_failures)`).Scan(&s.leads, &s.messages, &s.events, &s.failures)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// twice delivers the same request twice and checks the second delivery left
// the state exactly as the first did.
func (b *rbundle) twice(t *testing.T, deliver func() reply) (reply, reply, state) {
	t.Helper()
	first := deliver()
	after1 := b.state(t)
	second := deliver()
	after2 := b.state(t)
	if after1.leads != after2.leads || after1.messages != after2.messages || after1.events != after2.events {
		t.Fatalf("second delivery changed the state: %+v -> %+v", after1, after2)
	}
	return first, second, after2
}

func TestReceiverNewThenDuplicate(t *testing.T) {
	t.Parallel()
	b := newReceiver(t, pgtest.Pool(t))
	body := []byte(`{"type":"lead.created","email":"ada@example.com"}`)
	now := time.Now()
	first, second, s := b.twice(t, func() reply { return b.post(t, "crm", "evt_1", body, now, nil) })
	if first.code != 200 || !strings.Contains(first.body, "processed") || second.code != 200 || !strings.Contains(second.body, "duplicate") {
		t.Fatalf("answers %+v, %+v", first, second)
	}
	if s != (state{leads: 1, messages: 1, events: 1}) {
		t.Fatalf("state %+v", s)
	}
	found, err := b.inbox.FindByRef(context.Background(), b.pool, "email", "ada@example.com", 5)
	if err != nil || len(found) != 1 || found[0].ID != "evt_1" || !bytes.Equal(found[0].Payload, body) {
		t.Fatalf("search by email: %+v %v", found, err)
	}
	if got := testutil.ToFloat64(counter(t, b, "crm", "duplicate")); got != 1 {
		t.Fatalf("duplicate counter %v", got)
	}
}

func counter(t *testing.T, b *rbundle, source, outcome string) prometheus.Collector {
	t.Helper()
	return inbox.MetricsCounter(b.metrics, source, outcome)
}

func TestReceiverRefusesUnauthenticatedAndOversized(t *testing.T) {
	t.Parallel()
	b := newReceiver(t, pgtest.Pool(t))
	body := []byte(`{"n":1}`)
	now := time.Now()
	cases := []struct {
		name   string
		source string
		body   []byte
		ts     time.Time
		mutate func(*http.Request)
		code   int
	}{
		{"bad signature", "crm", body, now, func(r *http.Request) { r.Header.Set("Webhook-Signature", "v1,AAAA") }, 401},
		{"missing signature", "crm", body, now, func(r *http.Request) { r.Header.Del("Webhook-Signature") }, 401},
		{"body changed after signing", "crm", body, now, func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"n":2}`))
		}, 401},
		{"stale", "crm", body, now.Add(-6 * time.Minute), nil, 401},
		{"future", "crm", body, now.Add(6 * time.Minute), nil, 401},
		{"too large", "crm", bytes.Repeat([]byte("x"), 2048), now, nil, 413},
		{"unknown source", "nobody", body, now, nil, 404},
		{"wrong method", "crm", body, now, func(r *http.Request) { r.Method = http.MethodGet }, 405},
	}
	for _, tc := range cases {
		first, second, s := b.twice(t, func() reply { return b.post(t, tc.source, "evt_"+tc.name, tc.body, tc.ts, tc.mutate) })
		if first.code != tc.code || second.code != tc.code {
			t.Errorf("%s: answered %d then %d, want %d", tc.name, first.code, second.code, tc.code)
		}
		if s != (state{}) {
			t.Errorf("%s: wrote %+v", tc.name, s)
		}
	}
	if got := testutil.ToFloat64(counter(t, b, "crm", "bad_signature")); got != 10 {
		t.Fatalf("bad_signature counter %v, want 10", got)
	}
}

func TestReceiverPermanentTransientPanic(t *testing.T) {
	t.Parallel()
	b := newReceiver(t, pgtest.Pool(t))
	ctx := context.Background()
	now := time.Now()

	b.mode.Store("permanent")
	first, second, s := b.twice(t, func() reply { return b.post(t, "crm", "evt_perm", []byte(`{}`), now, nil) })
	if first.code != 422 || second.code != 422 || !strings.Contains(second.body, "rejected") {
		t.Fatalf("permanent: %+v then %+v", first, second)
	}
	if s.leads != 0 || s.messages != 0 || s.events != 1 {
		t.Fatalf("permanent: state %+v: only the rejected record may stay", s)
	}
	ev, err := b.inbox.Get(ctx, b.pool, "crm", "evt_perm")
	if err != nil || ev.Status != inbox.StatusRejected || !strings.Contains(ev.Reason, "contact list was deleted") {
		t.Fatalf("rejected record: %+v %v", ev, err)
	}
	// The retry storm of a rejected event is one failure row whose count
	// grows, keeping the first reason.
	perm, err := b.inbox.Failures(ctx, b.pool, "crm", "evt_perm", 10)
	if err != nil || len(perm) != 1 || perm[0].Count != 2 || perm[0].Kind != "rejected" || !strings.Contains(perm[0].Reason, "contact list was deleted") {
		t.Fatalf("failure log of the rejected event: %+v %v", perm, err)
	}

	b.mode.Store("transient")
	first, second, s = b.twice(t, func() reply { return b.post(t, "crm", "evt_tr", []byte(`{}`), now, nil) })
	if first.code != 503 || second.code != 503 || first.header.Get("Retry-After") != "7" {
		t.Fatalf("transient: %+v then %+v", first, second)
	}
	if s.leads != 0 || s.messages != 0 || s.events != 1 {
		t.Fatalf("transient: state %+v: nothing of the attempt may stay", s)
	}
	fails, err := b.inbox.Failures(ctx, b.pool, "crm", "evt_tr", 10)
	if err != nil || len(fails) != 1 || fails[0].Count != 2 || fails[0].Kind != "failed" || fails[0].StatusCode != 503 {
		t.Fatalf("failure log: %+v %v", fails, err)
	}
	b.mode.Store("")
	if r := b.post(t, "crm", "evt_tr", []byte(`{}`), now, nil); r.code != 200 || !strings.Contains(r.body, "processed") {
		t.Fatalf("after the transient fault: %+v", r)
	}

	b.mode.Store("panic")
	first, second, s = b.twice(t, func() reply { return b.post(t, "crm", "evt_panic", []byte(`{}`), now, nil) })
	if first.code != 500 || second.code != 500 {
		t.Fatalf("panic: %d then %d", first.code, second.code)
	}
	if s.leads != 1 || s.messages != 1 {
		t.Fatalf("panic left writes behind: %+v", s)
	}
	if _, err := b.inbox.Get(ctx, b.pool, "crm", "evt_panic"); !errors.Is(err, inbox.ErrNotFound) {
		t.Fatalf("panic left an inbox record: %v", err)
	}
	if fails, _ := b.inbox.Failures(ctx, b.pool, "crm", "evt_panic", 10); len(fails) != 1 || fails[0].Kind != "panic" {
		t.Fatalf("panic not logged: %+v", fails)
	}

	// A field the outbox refuses for its length (outbox.ErrTooLong, as
	// PostgreSQL's 54000 was) is refused on every retry: 422, not a 503
	// retry storm; unless the handler marks it Transient. Other refusals
	// (no destination) are the handler's bug: 503 until it is fixed.
	for mode, code := range map[string]int{"too long, transient": 503, "no destination": 503} {
		b.mode.Store(mode)
		first, second, _ := b.twice(t, func() reply {
			return b.post(t, "crm", "evt_"+strings.NewReplacer(" ", "_", ",", "").Replace(mode), []byte(`{}`), now, nil)
		})
		if first.code != code || second.code != code {
			t.Fatalf("%s: %+v then %+v; want %d", mode, first, second, code)
		}
	}
	// Every refusal the event's data causes (outbox.ErrUnstorable) is
	// 422 on both deliveries, and leaves only the rejected record.
	for i, mode := range []string{"too long", "payload over MaxPayload", "headers over 64 KiB", "not text"} {
		b.mode.Store(mode)
		id := fmt.Sprintf("evt_inv%d", i)
		first, second, s = b.twice(t, func() reply { return b.post(t, "crm", id, []byte(`{}`), now, nil) })
		if first.code != 422 || second.code != 422 || !strings.Contains(second.body, "rejected") {
			t.Fatalf("%s: %+v then %+v", mode, first, second)
		}
		if s.leads != 1 || s.messages != 1 {
			t.Fatalf("%s: state %+v: only the rejected record may stay (and evt_tr's lead and message)", mode, s)
		}
		if ev, err := b.inbox.Get(ctx, b.pool, "crm", id); err != nil || ev.Status != inbox.StatusRejected {
			t.Fatalf("%s: %+v %v; want a rejected record", mode, ev, err)
		}
	}
}

func TestReceiverConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	b := newReceiver(t, pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=20"))
	body := []byte(`{"type":"lead.created"}`)
	now := time.Now()
	var (
		wg    sync.WaitGroup
		codes sync.Map
	)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.post(t, "crm", "evt_storm", body, now, nil)
			codes.Store(i, r.code)
		}()
	}
	wg.Wait()
	codes.Range(func(k, v any) bool {
		if v.(int) != 200 {
			t.Errorf("delivery %v answered %v", k, v)
		}
		return true
	})
	if s := b.state(t); s != (state{leads: 1, messages: 1, events: 1}) {
		t.Fatalf("state after 50 concurrent deliveries: %+v", s)
	}
}

func TestReceiverBestEffortID(t *testing.T) {
	t.Parallel()
	b := newReceiver(t, pgtest.Pool(t))
	first, second, s := b.twice(t, func() reply { return b.post(t, "nometa", "", []byte(`{}`), time.Now(), nil) })
	if first.code != 200 || second.code != 200 || first.header.Get("X-Outboxd-Dedupe") != "best-effort" {
		t.Fatalf("%+v %+v", first, second)
	}
	if s.leads != 1 {
		t.Fatalf("state %+v", s)
	}
	var bestEffort bool
	if err := b.pool.QueryRow(context.Background(), `SELECT best_effort FROM outboxd.inbox_events`).Scan(&bestEffort); err != nil || !bestEffort {
		t.Fatalf("best_effort not stored: %v %v", bestEffort, err)
	}
}

// The database goes away mid-run: 503 with Retry-After, no panic, nothing
// half-written; when it comes back, the next delivery succeeds, once.
func TestReceiverDatabaseGoesAway(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	pool := pgtest.Connect(t, cluster.URL(t))
	b := newReceiver(t, pool)
	now := time.Now()
	if r := b.post(t, "crm", "evt_before", []byte(`{}`), now, nil); r.code != 200 {
		t.Fatalf("before: %+v", r)
	}
	cluster.Stop()
	for i := 0; i < 2; i++ {
		r := b.post(t, "crm", "evt_during", []byte(`{}`), now, nil)
		if r.code != 503 || r.header.Get("Retry-After") == "" {
			t.Fatalf("database down: %+v", r)
		}
	}
	cluster.Start(t)
	deadline := time.Now().Add(20 * time.Second)
	var r reply
	for {
		if r = b.post(t, "crm", "evt_during", []byte(`{}`), time.Now(), nil); r.code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.code != 200 || !strings.Contains(r.body, "processed") {
		t.Fatalf("after the database came back: %+v", r)
	}
	if again := b.post(t, "crm", "evt_during", []byte(`{}`), time.Now(), nil); !strings.Contains(again.body, "duplicate") {
		t.Fatalf("redelivery: %+v", again)
	}
	if s := b.state(t); s.leads != 2 || s.messages != 2 || s.events != 2 {
		t.Fatalf("state %+v", s)
	}
}

// inboxtest drives the real receiver and database.
func TestInboxtestOnTheRealReceiver(t *testing.T) {
	t.Parallel()
	b := newReceiver(t, pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=12"))
	h := b.rc
	signed := func(id string) inboxtest.Request {
		now := time.Now()
		return func() *http.Request {
			body := []byte(`{"type":"lead.created"}`)
			r := httptest.NewRequest(http.MethodPost, "/webhooks/crm", bytes.NewReader(body))
			signer, _ := dispatch.NewSigner(secret)
			r.Header.Set("Webhook-Id", id)
			r.Header.Set("Webhook-Timestamp", strconv.FormatInt(now.Unix(), 10))
			r.Header.Set("Webhook-Signature", signer.Sign(id, now, body))
			return r
		}
	}
	snap := func(t testing.TB) any { return b.state(t.(*testing.T)) }
	if s := inboxtest.DeliverTwice(t, h, signed("evt_a"), snap).(state); s.leads != 1 {
		t.Fatalf("after one delivery: %+v", s)
	}
	if s := inboxtest.DeliverConcurrently(t, h, signed("evt_b"), 20, snap).(state); s.leads != 2 || s.messages != 2 {
		t.Fatalf("after 20 concurrent deliveries: %+v", s)
	}
}

// An authentic request whose payload is not what the provider sends is a
// permanent failure: 422, kept as rejected, the same on every retry.
func TestReceiverMalformedPayload(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	in, _ := inbox.New(nil)
	stripe, _ := verify.Stripe("whsec_test")
	rc, err := inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{Sources: []inbox.Source{{
		Name: "stripe", Verifier: stripe,
		Handle: func(context.Context, pgx.Tx, *inbox.Delivery) error { t.Error("handler ran"); return nil },
	}}})
	if err != nil {
		t.Fatal(err)
	}
	body := "this is not JSON"
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmacSHA256Hex("whsec_test", ts+"."+body)
	b := &rbundle{rc: rc, pool: pool, inbox: in}
	if _, err := pool.Exec(context.Background(), `CREATE TABLE leads (id int)`); err != nil {
		t.Fatal(err)
	}
	deliver := func() reply {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", strings.NewReader(body))
		r.Header.Set("Stripe-Signature", "t="+ts+",v1="+mac)
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, r)
		return reply{code: w.Code, body: w.Body.String()}
	}
	first, second, s := b.twice(t, deliver)
	if first.code != 422 || second.code != 422 {
		t.Fatalf("answers %+v %+v", first, second)
	}
	if s.events != 1 || s.failures != 1 {
		t.Fatalf("state %+v", s)
	}
	fails, _ := in.Failures(context.Background(), pool, "stripe", "", 5)
	if len(fails) != 1 || fails[0].Count != 2 || fails[0].Kind != "rejected" {
		t.Fatalf("failures %+v", fails)
	}
}

func hmacSHA256Hex(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// A delivery that fails permanently while a concurrent delivery of the same
// event succeeds answers as a duplicate: the event's effects committed. (If
// its rejection reaches the row first, the other delivery is the duplicate.)
// The two deliveries reach two receivers, as two processes: within one,
// the second would wait for the first before the database (inflight.go).
func TestReceiverPermanentFailureRacingASuccess(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	in, _ := inbox.New(nil)
	v, _ := verify.StandardWebhooks(secret)
	var calls atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // a failure must not leave the first handler waiting
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		if calls.Add(1) == 1 {
			<-release // the second delivery is now waiting on our row
			return inbox.Permanent(errors.New("looked malformed to the first worker"))
		}
		return nil
	}
	process := func() *rbundle {
		b := serveReceiver(t, pool, in, &inbox.ReceiverConfig{Sources: []inbox.Source{{Name: "crm", Verifier: v, Handle: handle}}})
		return b
	}
	b, other := process(), process()
	now := time.Now()
	first := make(chan reply, 1)
	go func() { first <- b.post(t, "crm", "evt_race", []byte(`{}`), now, nil) }()
	for calls.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	second := make(chan reply, 1)
	go func() { second <- other.post(t, "crm", "evt_race", []byte(`{}`), now, nil) }()
	// Wait until the second delivery is really blocked behind the first's
	// row lock, however slow the machine.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second delivery never waited for the first")
		}
		time.Sleep(5 * time.Millisecond)
	}
	unblock()
	r1, r2 := <-first, <-second
	// Once the first rolls back, its rejection record and the second's
	// retried insert race for the row; either may win, and the answers
	// must agree with whichever did.
	ev, err := in.Get(context.Background(), pool, "crm", "evt_race")
	if err != nil {
		t.Fatal(err)
	}
	switch ev.Status {
	case inbox.StatusProcessed: // the second processed it: the first is its duplicate
		if r2.code != 200 || !strings.Contains(r2.body, "processed") || r1.code != 200 || !strings.Contains(r1.body, "duplicate") {
			t.Fatalf("processed by the second: answers %+v and %+v, want processed and duplicate", r2, r1)
		}
	case inbox.StatusRejected: // the first's rejection came first: the second gets its answer
		if r1.code != 422 || r2.code != 422 || !strings.Contains(r2.body, "rejected") {
			t.Fatalf("rejected by the first: answers %+v and %+v, want 422 twice", r1, r2)
		}
	default:
		t.Fatalf("status %s", ev.Status)
	}
	if calls.Load() > 2 {
		t.Fatalf("handler ran %d times", calls.Load())
	}
}
