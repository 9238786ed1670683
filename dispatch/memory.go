package dispatch

import (
	"context"
	"sync"
)

// Memory is an in-process destination for tests: it records every delivery
// and answers with Respond (Delivered when nil).
type Memory struct {
	// Respond decides each attempt's result; it may block until ctx is done.
	Respond func(ctx context.Context, msg Message) Result

	mu         sync.Mutex
	deliveries []Message
}

var _ Destination = (*Memory)(nil)

// Deliver records msg and answers.
func (m *Memory) Deliver(ctx context.Context, msg Message) Result {
	if err := ctx.Err(); err != nil {
		return Result{Outcome: Retry, Err: err}
	}
	res := Result{Outcome: Delivered}
	if m.Respond != nil {
		res = m.Respond(ctx, msg)
	}
	msg.Payload = append([]byte(nil), msg.Payload...)
	m.mu.Lock()
	m.deliveries = append(m.deliveries, msg)
	m.mu.Unlock()
	return res
}

// Deliveries returns every attempt so far, in arrival order.
func (m *Memory) Deliveries() []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Message(nil), m.deliveries...)
}
