package dispatch

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
)

// Message is what a destination delivers.
type Message struct {
	ID             uuid.UUID   // the outbox message's id
	Destination    string      // the configured destination's name
	Type           string      // the message type ("deal.won", ...)
	OrderingKey    string      // "" when order does not matter
	Seq            int64       // its place among the messages of its ordering key
	Payload        []byte      // the body to send
	Headers        http.Header // sent with the payload
	IdempotencyKey string      // stable across attempts: the receiver deduplicates by it
	// Attempt counts from 1.
	Attempt   int
	CreatedAt time.Time // when the message was enqueued
}

// Outcome is what should happen to a message after an attempt.
type Outcome string

const (
	// Delivered means the destination accepted the message.
	Delivered Outcome = "delivered"
	// Retry means a transient failure: try again after a backoff (or
	// RetryAfter).
	Retry Outcome = "retry"
	// Dead means a permanent failure: retrying cannot help.
	Dead Outcome = "dead"
	// Pause means the destination is gone (HTTP 410); stop sending to it
	// until an operator resumes it. The message stays pending.
	Pause Outcome = "pause"
)

// Result describes one attempt.
type Result struct {
	Outcome Outcome // what happens to the message next
	// StatusCode is the HTTP status, when there was one.
	StatusCode int
	// Err says what went wrong, for operators.
	Err error
	// RetryAfter is the destination's own wish (Retry-After), zero if none.
	RetryAfter time.Duration
	// Body is the start of the response body, for operators.
	Body []byte
}

// Destination delivers messages somewhere. Deliver must be safe for
// concurrent use, must carry msg.IdempotencyKey, and must return when ctx is
// done.
type Destination interface {
	// Deliver makes one attempt and says what came of it. A Result whose
	// Outcome is none of this package's constants is a bug: the worker
	// records it as a Retry whose error says so. So is a panic: the worker
	// recovers it and records a Retry whose error is "destination
	// panicked: " and the panic value, so keep secrets out of panic values.
	Deliver(ctx context.Context, msg Message) Result
}

// Concurrent is implemented by a Destination that bounds its own calls
// in flight (HTTP's MaxConcurrency). A worker.Dispatcher then makes at
// most Concurrency() calls of Deliver at once for each destination name it
// serves, over all its lanes, from that many goroutines, rather than a
// goroutine per ordering key of each batch that would only wait for the
// bound. Zero or less: no bound.
type Concurrent interface {
	// Concurrency is the most calls of Deliver the destination lets run
	// at once.
	Concurrency() int
}

// Shared is implemented by a Destination whose limits are meant for the
// destination as a whole, not for each process (HTTP's Rate). A
// worker.Dispatcher tells it, at every balancing round (each
// AcquireInterval), how many live dispatchers serve its name, itself
// included, so that it takes its share.
type Shared interface {
	// ShareAmong says that n dispatchers (at least 1) serve the
	// destination.
	ShareAmong(n int)
}

// DestinationFunc adapts a function to Destination.
type DestinationFunc func(ctx context.Context, msg Message) Result

// Deliver calls f.
func (f DestinationFunc) Deliver(ctx context.Context, msg Message) Result { return f(ctx, msg) }

// String describes the result for operators: its outcome, the HTTP status
// if any, and the error text if any. (Result is a value, not an error: it
// does not implement error, so a delivered result cannot pass for a failure.)
func (r Result) String() string {
	if r.StatusCode != 0 {
		return fmt.Sprintf("%s (HTTP %d) %s", r.Outcome, r.StatusCode, r.errText())
	}
	return fmt.Sprintf("%s %s", r.Outcome, r.errText())
}

// errText is the result's error text, or "".
func (r Result) errText() string {
	if r.Err == nil {
		return ""
	}
	return r.Err.Error()
}
