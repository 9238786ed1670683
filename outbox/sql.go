package outbox

// The outbox's SQL, in one place. {{schema}} is replaced once by New.

// enqueueSQL stores one message. {{keys}} and {{seq}} are keyedCTE and
// keyedSeq for a message with an ordering key: the CTE upserts the key's
// row and draws the next sequence number; the row lock it takes lasts
// until the transaction ends, which is what makes sequence order commit
// order. When the idempotency key is already stored (a re-enqueue stores
// nothing, so it draws no number), the CTE inserts nothing; the row then
// carries seq 0 only to pass the table's CHECK, which runs before ON
// CONFLICT finds the stored message and drops the row. A message without
// a key gets neither (seq NULL): a plain INSERT, which costs the server
// less than one with a data-modifying CTE that inserts nothing (about 5%
// of the enqueue at 16 connections, measured with pgbench).
//
// {{announce}} is the last column returned: announceInline (a NOTIFY in the
// caller's transaction, delivered at its commit) or announceLater (the
// transaction's id, for a Notifier to announce once it committed).
//
// {{probe}} and {{conflict}} are the idempotency-key check (dedupeProbe,
// dedupeConflict); a message whose id and key Enqueue has just made
// (enqueueFresh) leaves both out: no stored message can have a key that
// did not exist a moment ago, and an INSERT with ON CONFLICT is a
// speculative insertion, which costs a probe of the unique index and one
// more WAL record (48 B of about 610, docs/benchmarks.md).
const enqueueSQL = `{{keys}}
INSERT INTO {{schema}}.outbox_messages
    (id, destination, type, ordering_key, seq, payload, headers,
     idempotency_key, caused_by_source, caused_by_event_id, step)
VALUES ($1, $2, $3, $4, {{seq}},
        $5, $6, $7, $8, $9, $10){{conflict}}
RETURNING seq, created_at, lane, {{announce}}`

const (
	keyedCTE = `
WITH k AS (
    INSERT INTO {{schema}}.outbox_keys AS k (ordering_key, last_seq)
    SELECT $4::text, 1 WHERE $4::text IS NOT NULL{{probe}}
    ON CONFLICT (ordering_key) DO UPDATE SET last_seq = k.last_seq + 1
    RETURNING last_seq
)`
	keyedSeq = `CASE WHEN $4::text IS NOT NULL THEN coalesce((SELECT last_seq FROM k), 0) END`
)

// dedupeProbe draws no sequence number for a key the destination already
// has; dedupeConflict then stores nothing.
const (
	dedupeProbe = `
        AND NOT EXISTS (SELECT 1 FROM {{schema}}.outbox_messages
                        WHERE destination = $2 AND idempotency_key = $7)`
	dedupeConflict = `
ON CONFLICT (destination, idempotency_key) DO NOTHING`
)

// announceInline wakes the lane's dispatcher at commit: "m" and a mask of
// the lane and the destination's filter bit ($11: the bit shifted into the
// high 32 bits, in decimal; internal/wakeup). The channel is
// <schema>_outbox (dbschema.NotifyChannel); the schema name is validated.
const announceInline = `pg_notify('{{schema}}_outbox', 'm' || ((1::bigint << lane) + $11::text::numeric)::text)::text`

// announceLater returns the enqueueing transaction's id for the Notifier.
const announceLater = `pg_current_xact_id()::text`

const existingSQL = `
SELECT id, seq, created_at FROM {{schema}}.outbox_messages
WHERE destination = $1 AND idempotency_key = $2`

const getSQL = `
SELECT id, destination, type, ordering_key, seq, payload, headers,
       idempotency_key, caused_by_source, caused_by_event_id, step, status,
       attempts, next_attempt_at, last_error, last_status_code, created_at,
       delivered_at
FROM {{schema}}.outbox_messages
WHERE id = $1`

// notifierFlushSQL asks which of the enqueueing transactions ($1) have
// ended, and in the same statement wakes the lanes of those that committed
// with one NOTIFY: "m" and the OR of their masks ($2: lanes in the low 32
// bits, destinations' filter bits in the high 32; internal/wakeup), as an
// unsigned number (a bigint with the top bit set is negative). An id too
// old for PostgreSQL to remember comes back NULL.
const notifierFlushSQL = `
WITH s AS (
    SELECT x, l,
           -- Committed but not yet visible to new snapshots (the window
           -- between the commit record and the proc array): still waiting.
           CASE WHEN pg_xact_status(x::text::xid8) = 'committed'
                 AND NOT pg_visible_in_snapshot(x::text::xid8, pg_current_snapshot())
                THEN 'in progress' ELSE pg_xact_status(x::text::xid8) END AS st
    FROM unnest($1::bigint[], $2::bigint[]) AS u(x, l)
), n AS (
    SELECT pg_notify($3, 'm' || (CASE WHEN b < 0 THEN b + 18446744073709551616 ELSE b END)::text)
    FROM (SELECT bit_or(l)::numeric AS b FROM s WHERE st = 'committed' HAVING count(*) > 0) c
)
SELECT x, coalesce(st, 'forgotten'), (SELECT count(*) FROM n) FROM s`
