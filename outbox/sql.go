package outbox

// The outbox's SQL, in one place. {{schema}} is replaced once by New.

// enqueueSQL stores one message. {{keys}} and {{seq}} are keyedCTE and
// keyedSeq for a message with an ordering key: the CTE upserts the key's
// row and draws the next sequence number; the row lock it takes lasts
// until the transaction ends, which is what makes sequence order commit
// order. A message without a key gets neither (seq NULL): a plain INSERT,
// which costs the server less than one with a data-modifying CTE that
// inserts nothing (about 5% of the enqueue at 16 connections, measured
// with pgbench).
//
// {{row}} is the row: freshRow for a message whose id and key Enqueue has
// just made (enqueueFresh), checkedRow (with {{dup}}, dupCTE, before it)
// for any other. No stored message can have a key that did not exist a
// moment ago, so a fresh one needs no idempotency-key check, and an INSERT
// with ON CONFLICT is a speculative insertion, which costs a probe of the
// unique index and one more WAL record (48 B of about 610,
// docs/benchmarks.md).
//
// {{announce}} is the last column returned: announceInline (a NOTIFY in the
// caller's transaction, delivered at its commit) or announceLater (the
// transaction's id, for a Notifier to announce once it committed).
const enqueueSQL = `{{dup}}{{keys}}
INSERT INTO {{schema}}.outbox_messages
    (id, destination, type, ordering_key, seq, payload, headers,
     idempotency_key, caused_by_source, caused_by_event_id, step{{callercol}})
{{row}}
RETURNING seq, created_at, lane, {{announce}}`

const (
	keyedCTE = `
k AS (
    INSERT INTO {{schema}}.outbox_keys AS k (ordering_key, last_seq)
    SELECT $4::text, 1 WHERE $4::text IS NOT NULL{{stored}}
    ON CONFLICT (ordering_key) DO UPDATE SET last_seq = k.last_seq + 1
    RETURNING last_seq
)`
	keyedSeq = `CASE WHEN $4::text IS NOT NULL THEN coalesce((SELECT last_seq FROM k), 0) END`
	freshRow = `VALUES ($1, $2, $3, $4, {{seq}}, $5, $6, $7, $8, $9, $10)`
)

// A key is unique per destination in one of two ways (migration 15): a
// message whose key is its own id's text is found by its primary key
// (the key parsed, $11: NULL unless the key is a UUID's canonical text),
// any other by the unique index of keys (outbox_messages_given_key_idx,
// since migration 16 outbox_messages_caller_key_idx, which also holds the
// messages with the caller's id: see callerCol). dupCTE looks in both, so that a key given as another
// message's id (the key Enqueue made for it) finds that message; a
// duplicate in either form stores nothing and, keyed, draws no sequence
// number. ON CONFLICT without a target then catches the same key (or id)
// committed by a concurrent transaction since this statement's snapshot,
// in the form that conflicts in the same index.
const (
	dupCTE = `WITH d AS (
    SELECT EXISTS (SELECT 1 FROM {{schema}}.outbox_messages
                   WHERE destination = $2 AND idempotency_key = $7 AND idempotency_key <> id::text)
        OR EXISTS (SELECT 1 FROM {{schema}}.outbox_messages
                   WHERE id = $11::uuid AND destination = $2 AND idempotency_key = $7) AS stored
)`
	checkedRow = `SELECT $1::uuid, $2::text, $3::text, $4::text, {{seq}}, $5::bytea, $6::jsonb, $7::text, $8::text, $9::text, $10::text{{callerval}}
WHERE NOT (SELECT stored FROM d)
ON CONFLICT DO NOTHING`
	checkedStored = `
        AND NOT (SELECT stored FROM d)`
)

// announceInline wakes the lane's dispatcher at commit: "m" and a mask of
// the lane and the destination's filter bit ({{bit}}, the last parameter: the bit shifted into the
// high 32 bits, in decimal; internal/wakeup). The channel is
// <schema>_outbox (dbschema.NotifyChannel); the schema name is validated.
const announceInline = `pg_notify('{{schema}}_outbox', 'm' || ((1::bigint << lane) + {{bit}}::text::numeric)::text)::text`

// announceLater returns the enqueueing transaction's id for the Notifier.
const announceLater = `pg_current_xact_id()::text`

// A message whose id the caller gave is marked so since migration 16
// (callerCol, callerVal), which puts it in the unique index of keys too:
// there a transaction giving its id's text as another message's key, while
// its own is still open, conflicts with it (ON CONFLICT waits for it),
// where the primary-key probe of dupCTE only sees it once committed. The
// index's predicate is implied by dupCTE's, so the same statements serve
// schema 15 and 16. Producers write the column once they have seen it
// (callerIDSQL: they may run before the migration, CHANGELOG), and the
// statement marks the message only while that index is valid (callerVal,
// decided by each statement, never remembered): a message marked while the
// index builds, after the column was added (or added again after a down),
// would be checked against no other (15's index does not hold it), and two
// stored so would fail the build for good.
//
// callerIDSQL also says whether its answer is current: under REPEATABLE
// READ or SERIALIZABLE the catalog is read as the transaction began, so a
// "no" from a transaction open for a second or more is not kept.
const (
	callerCol   = `, caller_id`
	callerVal   = `, coalesce((SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('{{schema}}.outbox_messages_caller_key_idx')), false)`
	callerIDSQL = `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('{{schema}}.outbox_messages')
                  AND attname = 'caller_id' AND NOT attisdropped),
       current_setting('transaction_isolation') = 'read committed'
       OR statement_timestamp() - transaction_timestamp() < interval '1 second'`
)

// existingSQL finds the stored message with a key in either form
// (dupCTE): $3 is the key parsed as an id, or NULL.
const existingSQL = `
SELECT id, seq, created_at FROM {{schema}}.outbox_messages
WHERE destination = $1 AND idempotency_key = $2 AND idempotency_key <> id::text
UNION ALL
SELECT id, seq, created_at FROM {{schema}}.outbox_messages
WHERE id = $3::uuid AND destination = $1 AND idempotency_key = $2`

// byIDSQL reads the destination and key of the message with an id.
const byIDSQL = `SELECT destination, idempotency_key FROM {{schema}}.outbox_messages WHERE id = $1`

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
