package inbox_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// acquiresWaiting counts the goroutines in pgxpool's Acquire (waiting for
// a connection of a full pool): a wait PostgreSQL cannot show. Only a test
// that is not parallel can count its own.
func acquiresWaiting() int {
	buf := make([]byte, 8<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "puddle/v2.(*Pool[...]).acquire(")
}

// A failed receipt's failure row is written on the receipt's own
// connection: through the pool it waited behind the receipts queued for
// one, and a trial's pool of 3 under slow handlers dropped half the rows
// after recordFailure's 2 s. Here a pool of 2: a slow receipt, a failing
// one, and a third queued for a connection when the second fails. Each
// event is delivered twice.
//
// Not parallel: it counts the goroutines waiting for a connection.
func TestAFailureRowDoesNotWaitForThePool(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	pool := pgtest.Connect(t, url+"&pool_max_conns=2")
	in, _ := inbox.New(nil)
	v, _ := verify.StandardWebhooks(secret)
	held, failing := make(chan struct{}, 4), make(chan struct{}, 4)
	release, fail := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	handle := func(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
		if strings.HasPrefix(d.ID, "fail") {
			failing <- struct{}{}
			<-fail
			return errors.New("downstream down")
		}
		held <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b := serveReceiver(t, pool, in, &inbox.ReceiverConfig{Sources: []inbox.Source{{Name: "crm", Verifier: v, Handle: handle}}})
	now := time.Now()
	answers := make(chan reply, 3)
	send := func(id string) { go func() { answers <- b.post(t, "crm", id, []byte(`{}`), now, nil) }() }

	send("hold_1")
	<-held
	send("fail_1")
	<-failing
	send("hold_2")
	waitUntil(t, "the third receipt to wait for a connection", func() bool { return acquiresWaiting() == 1 })
	close(fail)
	// The failed receipt's row, read on a connection of its own.
	watcher := pgtest.Connect(t, url+"&pool_max_conns=1")
	waitUntil(t, "the failure row", func() bool {
		fails, err := in.Failures(ctx, watcher, "crm", "fail_1", 1)
		return err == nil && len(fails) == 1
	})
	unblock()
	for range 3 {
		if r := <-answers; !strings.Contains(r.body, map[bool]string{true: "failed", false: "processed"}[r.code == 503]) {
			t.Fatalf("answer %+v", r)
		}
	}
	for _, id := range []string{"hold_1", "hold_2", "fail_1"} {
		r := b.post(t, "crm", id, []byte(`{}`), now, nil)
		if want := map[bool]int{true: 503, false: 200}[id == "fail_1"]; r.code != want {
			t.Fatalf("%s delivered again: %+v, want %d", id, r, want)
		}
	}
	fails, err := in.Failures(ctx, watcher, "crm", "fail_1", 1)
	if err != nil || len(fails) != 1 || fails[0].Count != 2 {
		t.Fatalf("failure rows %+v %v; want one counting 2", fails, err)
	}
}

// waitUntil polls cond every 5 ms for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
