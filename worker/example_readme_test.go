package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/worker"
)

// The lines between the README markers are README.md's third Go block,
// line for line (internal/readme checks it); the rest makes it run.

func readmeDispatcher(ctx context.Context, pool *pgxpool.Pool, httpDest dispatch.Destination) error {
	// README.md go block 3
	d, err := worker.New(pool, &worker.Config{
		Destinations: map[string]dispatch.Destination{"email-api": httpDest},
	})
	if err != nil {
		return err // e.g. no destination: the error names Config.Destinations
	}
	// Cancelling Start's context stops the dispatcher at once (in-flight
	// deliveries are cut off, and sent again later); Stop gives them a grace period.
	if err := d.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	<-ctx.Done() // e.g. signal.NotifyContext
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return d.Stop(stopCtx)
	// end of README.md go block
}

// README.md's third block: an embedded dispatcher delivers a message over
// HTTP, then stops gracefully when its context ends.
func Example_readmeDispatcher() {
	ctx, stop := context.WithCancel(context.Background())
	pool, done := pgtest.ExamplePool() // a fresh migrated database
	defer done()

	got := make(chan string, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Idempotency-Key")
	}))
	defer api.Close()
	httpDest, err := dispatch.NewHTTP(&dispatch.HTTPConfig{URL: api.URL})
	if err != nil {
		panic(err)
	}
	out, _ := outbox.New(nil)
	msg, err := out.Enqueue(ctx, pool, outbox.Message{Destination: "email-api", Type: "email.welcome", Payload: []byte(`{}`)})
	if err != nil {
		panic(err)
	}
	go func() { // the signal: once the API has the message
		fmt.Println("idempotency key sent:", <-got == msg.IdempotencyKey)
		stop()
	}()

	fmt.Println("stopped:", readmeDispatcher(ctx, pool, httpDest))
	stored, err := out.Get(context.Background(), pool, msg.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println(stored.Status)
	// Output:
	// idempotency key sent: true
	// stopped: <nil>
	// delivered
}
