// Package outbox writes messages for downstream systems inside the caller's
// transaction.
//
// # Guarantee
//
// A message passed to Enqueue exists only if the caller's transaction
// commits: a rolled-back transaction sends nothing, a committed one is
// delivered at least once by a dispatcher (package worker, or the outboxd
// daemon). A Notifier (Config.Notifier) wakes the dispatcher once the
// transaction committed, without a NOTIFY in it (PostgreSQL serialises the
// commits of notifying transactions); without one, Enqueue notifies inside
// the transaction. Either way a dispatcher's sweep finds the message within
// its SweepInterval should no wake-up arrive.
//
// Every attempt for one message carries the same idempotency key, so a
// downstream that honours Idempotency-Key applies it once. The key is
// derived deterministically: from the causing inbox event, the message type
// and a step name when the message has a cause, so a handler that runs
// again (a replay, an async retry) produces the same key; else from the
// message id. Enqueueing a key that already exists for the destination is a
// no-op that returns the existing message.
//
// Messages that share an ordering key get a per-key sequence that follows
// COMMIT order, not id order: the enqueue takes a row lock on the key that
// is held until the transaction ends, so a second transaction for the same
// key waits and draws the next number. Dispatchers deliver one message per
// key at a time, in sequence order.
//
// That waiting is READ COMMITTED's, PostgreSQL's default. Under REPEATABLE
// READ or SERIALIZABLE, a transaction that waited for another's enqueue of
// the same ordering key, or of the same idempotency key, gets a
// serialization failure (SQLSTATE 40001) once the other commits, instead
// of the next number or the existing message: retry the transaction, as
// for any 40001.
//
// # Limits
//
// The row lock serialises transactions that enqueue for the same ordering
// key: keep such transactions short, and leave the key empty when order does
// not matter. Idempotency keys are unique per destination, whether given as a
// key or as the message's id (docs/design.md, "A key is stored in one of two
// forms"; on a schema before migration 16, or for a minute after it, a value
// given as one message's id and as another's key in transactions that
// overlap is stored twice).
package outbox
