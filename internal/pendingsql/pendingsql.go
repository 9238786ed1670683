// Package pendingsql reads which destinations have pending messages, how
// many and how old the oldest is, through the dispatcher's two lane
// indexes only (keyed: destination, lane, ordering_key, seq; unkeyed:
// destination, lane, next_attempt_at; both WHERE status = 'pending').
// There is no index on the creation time of pending messages (migration
// 12 dropped it: one index entry less per enqueue), so a read has a row
// budget, shared by every destination and lane it reads, instead of
// scanning a backlog: its cost stays bounded however large the backlog
// grows and however many destinations have one.
//
// Within the budget, every lane of every destination is read alike (a
// stuck key in the last lane is seen as surely as one in the first): per
// lane, the keyed messages in index order (the count), the head of each
// key (a skip scan, one probe per key, as the claim walks: a key's head is
// its oldest message), and the unkeyed messages from both ends of their
// index (the count and the oldest due first; a message retried for hours
// waits at the far end). Past its share a read stops and says so
// (capped): the count is then a lower bound and the oldest age the oldest
// seen.
//
// The fragments are shared by the worker's unserved-destination check and
// outboxd serve's /metrics collector; {{schema}} is rendered by the caller,
// and the query runs through InTx.
package pendingsql

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Budget is how many rows of outbox_messages one read ($1) may visit in
// all, over every destination with pending messages: each destination's
// 32 lanes get four reads (keyed count, key heads, unkeyed from each end)
// of Budget / (4 x 32 x destinations) rows each, at least 1. One
// destination is read exactly up to 500 keys or messages of each kind per
// lane (16,000 per destination). docs/operations.md promises these
// numbers.
const Budget = 64_000

// Destinations is the body of four CTEs (it follows WITH RECURSIVE, or a
// comma): keyed and unkeyed walk the two lane indexes one destination at a
// time (the first entry after the previous destination: one probe per
// destination, however many messages it has), budget holds each read's
// share of the budget $1 (Budget; tests pass a small one), and pending_destinations
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
), budget AS (
    -- Each read's share of the budget $1: a destination has 32 lanes of 4 reads.
    SELECT greatest(1, $1::bigint / (4 * 32 * greatest(count(*), 1)))::bigint AS per_read
    FROM pending_destinations
)`

// Stats is a subquery for a LATERAL join on a row named pd with a
// destination column: n, the destination's pending messages counted (each
// kind up to its share per lane), oldest, the earliest created_at seen,
// and capped, whether a read stopped at its share (n is then a lower bound
// and oldest may be younger than the truth). It needs Destinations' budget
// CTE. Each read is ordered as its index is, so that its plan is an index
// scan that stops at the share.
const Stats = `(
    SELECT sum(l.n)::bigint AS n, min(l.oldest) AS oldest, bool_or(l.capped) AS capped
    FROM generate_series(0, 31) AS g(lane) CROSS JOIN LATERAL (
        SELECT kc.n + uc.n AS n, least(kh.oldest, uc.oldest, ud.oldest) AS oldest,
               kc.n >= b.per_read OR kh.n >= b.per_read OR uc.n >= b.per_read AS capped
        FROM budget b,
        LATERAL (SELECT count(*) AS n FROM (
            SELECT 1 FROM {{schema}}.outbox_messages m
            WHERE m.destination = pd.destination AND m.lane = g.lane AND m.status = 'pending' AND m.ordering_key IS NOT NULL
            ORDER BY m.ordering_key, m.seq
            LIMIT b.per_read) x) kc,
        LATERAL (WITH RECURSIVE heads AS (
            (SELECT m.ordering_key, m.created_at, 1 AS i FROM {{schema}}.outbox_messages m
             WHERE m.destination = pd.destination AND m.lane = g.lane AND m.status = 'pending' AND m.ordering_key IS NOT NULL
             ORDER BY m.ordering_key, m.seq
             LIMIT 1)
            UNION ALL
            SELECT n.ordering_key, n.created_at, h.i + 1 FROM heads h CROSS JOIN LATERAL (
                SELECT m.ordering_key, m.created_at FROM {{schema}}.outbox_messages m
                WHERE m.destination = pd.destination AND m.lane = g.lane AND m.status = 'pending' AND m.ordering_key IS NOT NULL
                  AND m.ordering_key > h.ordering_key
                ORDER BY m.ordering_key, m.seq
                LIMIT 1) n
            WHERE h.i < b.per_read
        ) SELECT count(*) AS n, min(created_at) AS oldest FROM heads) kh,
        LATERAL (SELECT count(*) AS n, min(x.created_at) AS oldest FROM (
            SELECT m.created_at FROM {{schema}}.outbox_messages m
            WHERE m.destination = pd.destination AND m.lane = g.lane AND m.status = 'pending' AND m.ordering_key IS NULL
            ORDER BY m.next_attempt_at
            LIMIT b.per_read) x) uc,
        LATERAL (SELECT min(x.created_at) AS oldest FROM (
            SELECT m.created_at FROM {{schema}}.outbox_messages m
            WHERE m.destination = pd.destination AND m.lane = g.lane AND m.status = 'pending' AND m.ordering_key IS NULL
            ORDER BY m.next_attempt_at DESC
            LIMIT b.per_read) x) ud
    ) l
)`

// settingsSQL, run first in a read's transaction, turns JIT compilation
// off for it: the planner's estimate for 32 lanes of four reads per
// destination (200 destinations assumed without statistics) is far above
// jit_above_cost, and compiling the plan took 0.8 s of a read that runs in
// a millisecond, most of the scrape's 2 s timeout. SET LOCAL: the
// transaction's end restores it.
const settingsSQL = `SELECT set_config('jit', 'off', true)`

// Beginner begins a transaction: *pgxpool.Pool and *pgx.Conn are ones.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

var _ Beginner = (*pgxpool.Pool)(nil)

// InTx runs fn in a transaction set up for these reads (JIT off) and
// commits it; fn runs the query built from Destinations and Stats.
func InTx(ctx context.Context, db Beginner, fn func(pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, settingsSQL); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
