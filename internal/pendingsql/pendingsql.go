// Package pendingsql reads which destinations have pending messages, how
// many and how old the oldest is, through the dispatcher's two lane
// indexes only (keyed: destination, lane, ordering_key, seq; unkeyed:
// destination, lane, next_attempt_at; both WHERE status = 'pending').
// There is no index on the creation time of pending messages (migration
// 12 dropped it: one index entry less per enqueue), so the reads are
// capped instead of scanning a backlog: the cost of a read stays bounded
// however large the backlog grows.
//
// The fragments are shared by the worker's unserved-destination check and
// outboxd serve's /metrics collector; {{schema}} is rendered by the caller.
package pendingsql

// Cap is how many pending messages of each kind (keyed, unkeyed) a read
// counts per destination: up to Cap the count and the oldest age are
// exact; beyond, the count reads Cap per kind and the oldest is the
// oldest of the messages read. docs/operations.md promises this number.
const Cap = 100_000

// Destinations is the body of three CTEs (it follows WITH RECURSIVE, or a
// comma): keyed and unkeyed walk the two lane indexes one destination at a
// time (the first entry after the previous destination: one probe per
// destination, however many messages it has), and pending_destinations
// names each destination that has pending messages once.
const Destinations = `
keyed AS (
    (SELECT destination FROM {{schema}}.outbox_messages
     WHERE status = 'pending' AND ordering_key IS NOT NULL ORDER BY destination LIMIT 1)
    UNION ALL
    SELECT (SELECT m.destination FROM {{schema}}.outbox_messages m
            WHERE m.status = 'pending' AND m.ordering_key IS NOT NULL AND m.destination > keyed.destination
            ORDER BY m.destination LIMIT 1)
    FROM keyed WHERE keyed.destination IS NOT NULL
), unkeyed AS (
    (SELECT destination FROM {{schema}}.outbox_messages
     WHERE status = 'pending' AND ordering_key IS NULL ORDER BY destination LIMIT 1)
    UNION ALL
    SELECT (SELECT m.destination FROM {{schema}}.outbox_messages m
            WHERE m.status = 'pending' AND m.ordering_key IS NULL AND m.destination > unkeyed.destination
            ORDER BY m.destination LIMIT 1)
    FROM unkeyed WHERE unkeyed.destination IS NOT NULL
), pending_destinations AS (
    SELECT destination FROM keyed WHERE destination IS NOT NULL
    UNION
    SELECT destination FROM unkeyed WHERE destination IS NOT NULL
)`

// Stats is a subquery for a LATERAL join on a row named pd with a
// destination column: n, the destination's pending messages (each kind
// counted up to the cap), and oldest, the earliest created_at among them.
// $1 is the cap (Cap; tests pass a small one). Each read is ordered as its
// index is, so that the plan is an index scan that stops at the cap
// whatever the statistics say: a bitmap would first collect every pending
// entry of the destination.
const Stats = `(
    SELECT count(*) AS n, min(p.created_at) AS oldest FROM (
        (SELECT m.created_at FROM {{schema}}.outbox_messages m
         WHERE m.destination = pd.destination AND m.status = 'pending' AND m.ordering_key IS NOT NULL
         ORDER BY m.destination, m.lane, m.ordering_key, m.seq
         LIMIT $1)
        UNION ALL
        (SELECT m.created_at FROM {{schema}}.outbox_messages m
         WHERE m.destination = pd.destination AND m.status = 'pending' AND m.ordering_key IS NULL
         ORDER BY m.destination, m.lane, m.next_attempt_at
         LIMIT $1)
    ) p
)`
