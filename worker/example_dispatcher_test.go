package worker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// An application embeds a dispatcher to drain its outbox: each destination
// is named as in outbox.Message.Destination, and receives the messages of
// one ordering key one at a time, in commit order. Stop waits for the
// deliveries in flight to be recorded.
func ExampleNew() {
	ctx := context.Background()
	pool, done := pgtest.ExamplePool() // a fresh migrated database
	defer done()

	delivered := make(chan string)
	crm := dispatch.DestinationFunc(func(ctx context.Context, msg dispatch.Message) dispatch.Result {
		delivered <- fmt.Sprintf("%s #%d %s", msg.OrderingKey, msg.Seq, msg.Payload)
		return dispatch.Result{Outcome: dispatch.Delivered} // a real one calls the CRM's API
	})
	d, err := worker.New(pool, &worker.Config{
		Destinations: map[string]dispatch.Destination{"crm": crm},
	})
	if err != nil {
		panic(err)
	}
	if err := d.Start(ctx); err != nil {
		panic(err)
	}

	out, _ := outbox.New(nil)
	var ids []uuid.UUID
	for _, stage := range []string{"qualified", "won"} {
		msg, err := out.Enqueue(ctx, pool, outbox.Message{ // its own transaction, for brevity
			Destination: "crm",
			Type:        "deal.stage_changed",
			OrderingKey: "deal-42",
			Payload:     []byte(`{"stage":"` + stage + `"}`),
		})
		if err != nil {
			panic(err)
		}
		ids = append(ids, msg.ID)
	}
	fmt.Println(<-delivered)
	fmt.Println(<-delivered)

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.Stop(stopCtx); err != nil {
		panic(err)
	}
	for _, id := range ids {
		stored, err := out.Get(ctx, pool, id)
		if err != nil {
			panic(err)
		}
		fmt.Println(stored.Seq, stored.Status)
	}

	// Output:
	// deal-42 #1 {"stage":"qualified"}
	// deal-42 #2 {"stage":"won"}
	// 1 delivered
	// 2 delivered
}
