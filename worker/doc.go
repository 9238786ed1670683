// Package worker drains the outbox: it hands every committed message to its
// destination, at least once, in per-key commit order, with backoff, dead
// letters and recovery after crashes. The outboxd daemon runs it; an
// application can embed it instead (New, Start, Stop).
//
// # Guarantees
//
// A committed message is delivered at least once, across crashes of
// dispatchers, restarts of PostgreSQL and downstream outages; every attempt
// carries the message's idempotency key. Messages that share an ordering key
// go out one at a time, in sequence (commit) order: a message is attempted
// only after every earlier message of its key was delivered or
// dead-lettered. A failing message blocks only its own key, and only until it
// is dead-lettered. Messages with different keys flow in parallel.
//
// # How
//
// Messages are spread over 32 lanes by a hash of their ordering key
// (unkeyed ones by id). Each lane is drained by one dispatcher at a time,
// which holds a lease on it (outbox_lanes) and renews it every
// AcquireInterval. Dispatchers register in outbox_dispatchers and each takes
// its fair share of lanes, so several processes split the work. A lane's
// runner claims a batch (for each key its next messages in sequence, plus due
// unkeyed messages), delivers keys concurrently and each key's messages in
// order, and records all results with one statement. It is woken by the
// NOTIFY that the outbox sends at commit (the payload names the lane), by
// its own timer for due retries, and by a River periodic job that re-kicks
// lanes with due work in case a notification was missed. River's elected
// leader also runs the maintenance jobs (purging expired inbox keys and old
// delivered messages).
//
// # What happens on failure
//
//   - A dispatcher dies (SIGKILL, OOM, machine loss): its leases expire after
//     LeaseTTL and other dispatchers (or its restart) take its lanes. Messages
//     it was sending but had not recorded are sent again, with the same
//     idempotency key.
//   - PostgreSQL restarts: runners and the listener retry with backoff; a
//     delivery whose result could not be recorded is sent again.
//   - A dispatcher is cut off from PostgreSQL for longer than LeaseTTL while
//     still sending: another takes its lanes and may send a message that the
//     first is still sending. Both carry the same idempotency key; the
//     first's results are discarded (recording checks the lease).
//   - A destination answers 410: it is paused for every dispatcher until an
//     operator resumes it (outbox.ResumeDestination); its messages wait.
package worker
