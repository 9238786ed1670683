package outbox

// The outbox's SQL, in one place. {{schema}} is replaced once by New.

// enqueueSQL stores one message. With an ordering key, the CTE upserts the
// key's row and draws the next sequence number; the row lock it takes lasts
// until the transaction ends, which is what makes sequence order commit
// order. Without a key, or when the idempotency key is already stored (a
// re-enqueue stores nothing, so it draws no number), the CTE inserts
// nothing; the row then carries seq 0 only to pass the table's CHECK, which
// runs before ON CONFLICT finds the stored message and drops the row. The
// NOTIFY comes from a row trigger on outbox_messages.
const enqueueSQL = `
WITH k AS (
    INSERT INTO {{schema}}.outbox_keys AS k (ordering_key, last_seq)
    SELECT $4::text, 1 WHERE $4::text IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM {{schema}}.outbox_messages
                        WHERE destination = $2 AND idempotency_key = $7)
    ON CONFLICT (ordering_key) DO UPDATE SET last_seq = k.last_seq + 1
    RETURNING last_seq
)
INSERT INTO {{schema}}.outbox_messages
    (id, destination, type, ordering_key, seq, payload, headers,
     idempotency_key, caused_by_source, caused_by_event_id, step)
VALUES ($1, $2, $3, $4, CASE WHEN $4::text IS NOT NULL THEN coalesce((SELECT last_seq FROM k), 0) END,
        $5, $6, $7, $8, $9, $10)
ON CONFLICT (destination, idempotency_key) DO NOTHING
RETURNING seq, created_at`

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
