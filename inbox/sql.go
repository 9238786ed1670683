package inbox

// The inbox's SQL, in one place. {{schema}} is replaced once by New.

// recordSQL inserts the event or, on conflict, counts a duplicate. A key
// whose window has passed is overwritten as a fresh event with
// duplicate_count 0, so "duplicate_count = 0" means New in all cases: one
// round trip, no unique violation, and concurrent deliveries wait on the
// first one's row lock.
const recordSQL = `
INSERT INTO {{schema}}.inbox_events AS e
    (source, event_id, best_effort, event_type, occurred_at, expires_at,
     status, status_reason, processed_at, payload, headers, refs, signed_at, original_id)
VALUES ($1, $2, $3, $4, $5, now() + $6::bigint * interval '1 microsecond',
     $7, $8, CASE WHEN $7 = 'processed' THEN now() END, $9, $10, $11, $12, $13)
ON CONFLICT (source, event_id) DO UPDATE SET
    last_seen_at    = now(),
    duplicate_count = CASE WHEN e.expires_at > now() THEN e.duplicate_count + 1 ELSE 0 END,
    best_effort     = CASE WHEN e.expires_at > now() THEN e.best_effort ELSE excluded.best_effort END,
    event_type      = CASE WHEN e.expires_at > now() THEN e.event_type ELSE excluded.event_type END,
    occurred_at     = CASE WHEN e.expires_at > now() THEN e.occurred_at ELSE excluded.occurred_at END,
    signed_at       = CASE WHEN e.expires_at > now() THEN e.signed_at ELSE excluded.signed_at END,
    original_id     = CASE WHEN e.expires_at > now() THEN e.original_id ELSE excluded.original_id END,
    received_at     = CASE WHEN e.expires_at > now() THEN e.received_at ELSE excluded.received_at END,
    status          = CASE WHEN e.expires_at > now() THEN e.status ELSE excluded.status END,
    status_reason   = CASE WHEN e.expires_at > now() THEN e.status_reason ELSE excluded.status_reason END,
    processed_at    = CASE WHEN e.expires_at > now() THEN e.processed_at ELSE excluded.processed_at END,
    payload         = CASE WHEN e.expires_at > now() THEN e.payload ELSE excluded.payload END,
    headers         = CASE WHEN e.expires_at > now() THEN e.headers ELSE excluded.headers END,
    refs            = CASE WHEN e.expires_at > now() THEN e.refs ELSE excluded.refs END,
    expires_at      = CASE WHEN e.expires_at > now() THEN e.expires_at ELSE excluded.expires_at END
RETURNING duplicate_count, received_at, status`

const markProcessedSQL = `
UPDATE {{schema}}.inbox_events
SET status = 'processed', status_reason = '', processed_at = now()
WHERE source = $1 AND event_id = $2 AND status = 'received'`

const markRejectedSQL = `
UPDATE {{schema}}.inbox_events
SET status = 'rejected', status_reason = $3
WHERE source = $1 AND event_id = $2 AND status <> 'rejected'`

// forgetSQL deletes an event's record and, when the receiver deduped its
// body too, that record as well: keyed on the body alone, or on the type
// and the body (bodyDedupeKey).
const forgetSQL = `
WITH gone AS (
    DELETE FROM {{schema}}.inbox_events WHERE source = $1 AND event_id = $2
    RETURNING event_type, payload
), body AS (
    DELETE FROM {{schema}}.inbox_events b USING gone
    WHERE b.source = $1 AND b.event_id IN (
        'body:' || encode(sha256(gone.payload), 'hex'),
        'body:' || encode(sha256(convert_to(gone.event_type, 'UTF8') || '\x00'::bytea || gone.payload), 'hex'))
)
SELECT count(*) FROM gone`

const addRefsSQL = `
UPDATE {{schema}}.inbox_events
SET refs = refs || $3::jsonb
WHERE source = $1 AND event_id = $2`

const selectColumns = `
SELECT source, COALESCE(original_id, event_id), best_effort, event_type, occurred_at, signed_at, received_at,
       last_seen_at, expires_at, duplicate_count, status, status_reason,
       processed_at, payload, headers, refs, event_id
FROM {{schema}}.inbox_events`

// getSQL finds an event by the forms its id may be stored in ($2:
// eventkey.Forms); a long id a version before migration 7 stored as given
// and a later delivery stored by its hash are two rows: the newest wins.
const getSQL = selectColumns + `
WHERE source = $1 AND event_id = ANY($2::text[])
ORDER BY received_at DESC
LIMIT 1`

const findByRefSQL = selectColumns + `
WHERE refs @> jsonb_build_object($1::text, $2::text)
ORDER BY received_at DESC
LIMIT $3`

// recordFailureSQL counts a failed receipt; an empty reason (a retry of an
// event rejected before) keeps the one recorded.
const recordFailureSQL = `
INSERT INTO {{schema}}.inbox_failures AS f (source, event_id, kind, reason, status_code)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (source, event_id, kind) DO UPDATE SET
    reason = coalesce(nullif(excluded.reason, ''), f.reason), status_code = excluded.status_code,
    last_at = now(), count = f.count + 1`

const failuresSQL = `
SELECT source, event_id, kind, reason, status_code, first_at, last_at, count
FROM {{schema}}.inbox_failures
WHERE ($1::text IS NULL OR source = $1) AND ($2::text IS NULL OR event_id = $2)
ORDER BY last_at DESC
LIMIT $3`

const unprocessedSQL = `
SELECT source, count(*)::int, min(received_at)
FROM {{schema}}.inbox_events
WHERE status = 'received'
GROUP BY source
ORDER BY source`
