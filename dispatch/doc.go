// Package dispatch is the downstream side of outboxd: destinations that a
// dispatcher (package worker) hands committed outbox messages to, and the
// classification of what they answer into delivered, retry, dead or pause.
//
// A Destination is one method. Every destination must carry the message's
// IdempotencyKey on every attempt (the HTTP destination sends it as
// Idempotency-Key and as the Standard Webhooks webhook-id; the NATS
// destination as Nats-Msg-Id), so that a downstream that dedupes on it
// applies a message once although outboxd delivers at least once.
//
// The conformance suite in dispatchtest checks those rules for any
// destination.
package dispatch
