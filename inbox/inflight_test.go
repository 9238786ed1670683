package inbox_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// Duplicates of an event under way wait for it without a database
// connection: with a pool of 2 and a slow first receipt, 5 duplicates
// queued behind it, an unrelated event is still processed at once (a
// trial's duplicates held every connection, and the unrelated event
// waited for the slow one). Each event is delivered more than once, and
// the result is one processed receipt and one lead per event.
func TestDuplicatesOfASlowEventLeaveThePoolToOthers(t *testing.T) {
	t.Parallel()
	slowBurst(t, inbox.BodyDedupeAuto, func(int) string { return "evt_slow" })
}

// So do replays of its body under fresh ids, where the source dedupes on
// the body: they waited in PostgreSQL on the body key's row lock, each
// with a connection of the pool.
func TestReplaysOfASlowEventsBodyLeaveThePoolToOthers(t *testing.T) {
	t.Parallel()
	slowBurst(t, inbox.BodyDedupeOn, func(i int) string { return fmt.Sprintf("evt_replay_%d", i) })
}

// slowBurst delivers 6 requests with the same body at once, under the ids
// id gives, to a pool of 2 whose first receipt is held until the others
// wait behind it; meanwhile an unrelated event is delivered twice. Every
// burst request but one is a duplicate; one lead per event.
func slowBurst(t *testing.T, dedupe inbox.BodyDedupe, id func(i int) string) {
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=2")
	if _, err := pool.Exec(ctx, `CREATE TABLE leads (id bigserial PRIMARY KEY, event_id text)`); err != nil {
		t.Fatal(err)
	}
	in, _ := inbox.New(nil)
	v, _ := verify.StandardWebhooks(secret)
	slowBody := []byte(`{"slow":true}`)
	entered, release := make(chan struct{}, 10), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // a failure must not leave the slow receipts hanging
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		if _, err := tx.Exec(ctx, `INSERT INTO leads (event_id) VALUES ($1)`, d.ID); err != nil {
			return err
		}
		if string(d.Body) == string(slowBody) {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	b := serveReceiver(t, pool, in, &inbox.ReceiverConfig{Sources: []inbox.Source{{Name: "crm", Verifier: v, Handle: handle, BodyDedupe: dedupe}}})
	now := time.Now()

	const slow = 6
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		answers []reply
	)
	for i := range slow {
		wg.Go(func() {
			r := b.post(t, "crm", id(i), slowBody, now, nil)
			mu.Lock()
			answers = append(answers, r)
			mu.Unlock()
		})
	}
	<-entered
	deadline := time.Now().Add(10 * time.Second)
	for inbox.InflightWaiting(b.rc) != slow-1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued behind the slow receipt, want %d", inbox.InflightWaiting(b.rc), slow-1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The slow receipt holds one connection; the other is free.
	client := &http.Client{Timeout: 10 * time.Second}
	for i, want := range []string{"processed", "duplicate"} {
		resp, err := client.Do(b.request(t, "crm", "evt_fast", []byte(`{}`), now))
		if err != nil {
			t.Fatalf("unrelated event, delivery %d, while the slow one runs: %v", i+1, err)
		}
		body := make([]byte, 200)
		n, _ := resp.Body.Read(body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body[:n]), want) {
			t.Fatalf("unrelated event, delivery %d: %d %s; want 200 %s", i+1, resp.StatusCode, body[:n], want)
		}
	}
	unblock()
	wg.Wait()
	statuses := map[string]int{}
	for _, a := range answers {
		if a.code != 200 {
			t.Fatalf("slow event answered %+v", a)
		}
		for _, s := range []string{"processed", "duplicate"} {
			if strings.Contains(a.body, s) {
				statuses[s]++
			}
		}
	}
	if statuses["processed"] != 1 || statuses["duplicate"] != slow-1 {
		t.Fatalf("slow event's answers %v; want 1 processed and %d duplicates", statuses, slow-1)
	}
	var leads int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM leads`).Scan(&leads); err != nil || leads != 2 {
		t.Fatalf("%d leads (%v); want one per event", leads, err)
	}
}

// A replay of a GitHub body under way without a delivery id (its id is
// then the body key) waits in the process too: it held a connection on the
// body key's row lock, and an unrelated event waited for the pool.
func TestAnIDlessReplayOfASlowBodyWaitsInTheProcess(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t)+"&pool_max_conns=2")
	in, _ := inbox.New(nil)
	gh, _ := verify.GitHub(ghSecret)
	slow := []byte(`{"action":"opened","issue":{"id":4}}`)
	entered, release := make(chan struct{}, 4), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		if string(d.Body) == string(slow) {
			entered <- struct{}{}
			<-release
		}
		return nil
	}
	rc, err := inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{Sources: []inbox.Source{{Name: "github", Verifier: gh, Handle: handle}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	f := &pfix{srv: srv}
	answers := make(chan reply, 2)
	go func() { answers <- f.send(t, "/github", slow, githubHeaders("g4", slow)) }()
	<-entered
	idless := githubHeaders("", slow)
	delete(idless, "X-GitHub-Delivery")
	go func() { answers <- f.send(t, "/github", slow, idless) }()
	deadline := time.Now().Add(10 * time.Second)
	for inbox.InflightWaiting(rc) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests wait in the process behind the slow receipt, want the id-less replay", inbox.InflightWaiting(rc))
		}
		time.Sleep(5 * time.Millisecond)
	}
	other := []byte(`{"action":"opened","issue":{"id":5}}`)
	for i, want := range []string{"processed", "duplicate"} {
		if r := f.send(t, "/github", other, githubHeaders("g5", other)); r.code != 200 || !strings.Contains(r.body, want) {
			t.Fatalf("unrelated event, delivery %d: %+v", i+1, r)
		}
	}
	unblock()
	got := map[string]int{}
	for range 2 {
		r := <-answers
		for _, s := range []string{"processed", "duplicate"} {
			if r.code == 200 && strings.Contains(r.body, s) {
				got[s]++
			}
		}
	}
	if got["processed"] != 1 || got["duplicate"] != 1 {
		t.Fatalf("answers %v; want the slow event processed once and the replay a duplicate", got)
	}
}
