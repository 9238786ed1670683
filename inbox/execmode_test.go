package inbox_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// The receipt runs in whatever query mode the application's pool uses:
// behind PgBouncer's transaction pooling that is often exec or the simple
// protocol, where the server does not describe parameters and pgx must know
// each argument's type. Every mode answers and stores alike, each event
// delivered twice; the Inbox's other calls work in it too.
func TestReceiptInEveryQueryExecMode(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newReceiver(t, pgtest.Connect(t, pgtest.URL(t)+"&default_query_exec_mode="+mode))
			now := time.Now()
			first, second, s := b.twice(t, func() reply { return b.post(t, "crm", "evt_new", []byte(`{"n":1}`), now, nil) })
			if first.code != 200 || !strings.Contains(first.body, "processed") || second.code != 200 || !strings.Contains(second.body, "duplicate") {
				t.Fatalf("new event: %+v then %+v", first, second)
			}
			if s != (state{leads: 1, messages: 1, events: 1}) {
				t.Fatalf("after the new event: %+v", s)
			}
			b.mode.Store("permanent")
			first, second, _ = b.twice(t, func() reply { return b.post(t, "crm", "evt_perm", []byte(`{}`), now, nil) })
			if first.code != 422 || second.code != 422 {
				t.Fatalf("rejected event: %+v then %+v", first, second)
			}
			b.mode.Store("transient")
			first, second, _ = b.twice(t, func() reply { return b.post(t, "crm", "evt_tr", []byte(`{}`), now, nil) })
			if first.code != 503 || second.code != 503 {
				t.Fatalf("failing event: %+v then %+v", first, second)
			}
			fails, err := b.inbox.Failures(ctx, b.pool, "crm", "evt_tr", 10)
			if err != nil || len(fails) != 1 || fails[0].Count != 2 {
				t.Fatalf("failure log: %+v %v", fails, err)
			}

			if err := b.inbox.AddRefs(ctx, b.pool, "crm", "evt_new", map[string]string{"deal": "d-7"}); err != nil {
				t.Fatal(err)
			}
			found, err := b.inbox.FindByRef(ctx, b.pool, "deal", "d-7", 5)
			if err != nil || len(found) != 1 || found[0].ID != "evt_new" {
				t.Fatalf("FindByRef: %+v %v", found, err)
			}
			async := inbox.Event{Source: "jobs", ID: "evt_async", Payload: []byte(`{}`), Status: inbox.StatusReceived}
			if res, err := b.inbox.Record(ctx, b.pool, async); err != nil || !res.New {
				t.Fatalf("Record: %+v %v", res, err)
			}
			if res, err := b.inbox.Record(ctx, b.pool, async); err != nil || res.New {
				t.Fatalf("Record again: %+v %v", res, err)
			}
			if backlog, err := b.inbox.Unprocessed(ctx, b.pool); err != nil || len(backlog) != 1 {
				t.Fatalf("Unprocessed: %+v %v", backlog, err)
			}
			if ok, err := b.inbox.MarkProcessed(ctx, b.pool, "jobs", "evt_async"); err != nil || !ok {
				t.Fatalf("MarkProcessed: %v %v", ok, err)
			}
			if ev, err := b.inbox.Get(ctx, b.pool, "jobs", "evt_async"); err != nil || ev.Status != inbox.StatusProcessed {
				t.Fatalf("Get: %+v %v", ev, err)
			}
			refused := inbox.Event{Source: "jobs", ID: "evt_refused", Payload: []byte(`{}`), Status: inbox.StatusReceived}
			if _, err := b.inbox.Record(ctx, b.pool, refused); err != nil {
				t.Fatal(err)
			}
			if err := b.inbox.MarkRejected(ctx, b.pool, "jobs", "evt_refused", "no such deal"); err != nil {
				t.Fatal(err)
			}
			if ev, err := b.inbox.Get(ctx, b.pool, "jobs", "evt_refused"); err != nil || ev.Status != inbox.StatusRejected || ev.Reason != "no such deal" {
				t.Fatalf("Get of the rejected event: %+v %v", ev, err)
			}
			if ok, err := b.inbox.Forget(ctx, b.pool, "crm", "evt_new"); err != nil || !ok {
				t.Fatalf("Forget: %v %v", ok, err)
			}
		})
	}
}
