// Package worker drains the outbox: it hands every committed message to its
// destination, at least once, in per-key commit order, with backoff, dead
// letters and recovery after crashes. The outboxd daemon runs it; an
// application can embed it instead (New, Start, Stop).
//
// # Guarantees
//
// A committed message is delivered at least once, across crashes of
// dispatchers, restarts of PostgreSQL and downstream outages; every attempt
// carries the message's idempotency key. Each destination receives the
// messages of one ordering key one at a time, in sequence (commit) order: a
// message is attempted only after every earlier message of its key for that
// destination was delivered or dead-lettered. A failing message blocks only
// its own key at its own destination, and only until it is dead-lettered.
// Keys, and destinations, flow in parallel: a destination that hangs slows
// only itself.
//
// # How
//
// Messages are spread over 32 lanes by a hash of their ordering key
// (unkeyed ones by id). Each destination's lane is drained by one
// dispatcher at a time, which holds a lease on it (outbox_lanes) under a
// fencing token and renews it every AcquireInterval, only while the runner
// that acquired it runs. Dispatchers register in outbox_dispatchers with the
// destinations they serve, and each takes its fair share of those
// destinations' lanes, so several processes, even with different
// destination sets, split the work. A lane's runner claims a batch (for each
// key its next messages in sequence, oldest keys first, plus due unkeyed
// messages; only while the lease and token are still its own; reading
// only the keys' heads, never the backlog behind them), delivers
// keys concurrently and each key's messages in order, and records all
// results with one statement. It is woken by the outbox's notification once
// an enqueue committed (the payload names the lanes and the destinations,
// through a filter of 32 bits, so other destinations' lanes sleep unless
// their names share a bit), by its own sweep
// every SweepInterval (the bound on pickup when no notification arrives,
// and how due retries are found; an empty lane's sweep is the
// dispatcher's idle probe, one statement for all of them). Every dispatcher queues the maintenance
// job (purging expired inbox keys and old delivered messages) each
// Maintenance.Interval, unique within it; one of them works it.
//
// Besides the pool it is given, a dispatcher opens one connection to
// LISTEN and a pool of at most 2 for lane management (heartbeats, lease
// renewals, acquiring and releasing lanes), which never touches
// outbox_messages: a lock there holding every claim, and every connection
// of the pool, does not stop the renewals.
//
// # What happens on failure
//
//   - A dispatcher dies (SIGKILL, OOM, machine loss), or restarts under the
//     same ID: its leases expire and other dispatchers (or its restart) take
//     every lane within LeaseTTL + AcquireInterval. Messages it was sending
//     but had not recorded are sent again, with the same idempotency key.
//   - A dispatcher freezes (SIGSTOP, a pause, a partition) past its lease: it
//     starts no attempt after its lease deadline, cancels those in flight,
//     and its claims and recordings are refused by the token once another
//     took the lane. A request it had already written may still arrive
//     late, with the same idempotency key.
//   - PostgreSQL restarts: runners and the listener retry with backoff (one
//     log line when failures start, one when they end); a delivery whose
//     result could not be recorded is recorded once the database answers,
//     while the lane's lease holds (renewed on connections of their own),
//     and sent again only if the lease ran out first, the lane was handed
//     to another dispatcher or the dispatcher stopped.
//   - Stop: the attempts in flight finish and are recorded, no other
//     starts, and the rest of each batch stays pending, untried. Stop runs
//     out of patience, or the context given to Start is cancelled:
//     in-flight attempts are cancelled and recorded as abandoned (not
//     counted against the message's retries).
//   - A destination answers 410: it is paused for every dispatcher until an
//     operator resumes it (outbox.ResumeDestination); its messages wait.
//   - No live dispatcher serves a destination: its messages wait, never
//     dead-lettered; Unserved, a metric and a log line report them.
//   - A Destination returns an Outcome that is none of dispatch's (a
//     forgotten zero value): the attempt is recorded as a retry whose error
//     names the outcome, and logged as one.
//   - A Destination panics: the panic is recovered; the attempt is recorded
//     (and counted) as a retry whose error is "destination panicked: " and
//     the panic value, its stack is logged at error (once per destination
//     per 10 s), and the dispatcher goes on.
package worker
