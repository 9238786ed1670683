package console

// The console's own SQL, in one place; dead letters and pauses go through
// the outbox package's operator calls. {{schema}} is replaced by New. A
// filter argument left NULL matches everything.

// eventsSQL searches the inbox ($1 text: an event id or a reference's
// value, whatever its name; $2, $3 a reference's name and value; $4 source;
// $5 status; $6, $7 received_at bounds; $8 limit; $9, $10 the source and
// stored id of the last row of the previous page, which ends at $7: rows
// received at the same instant are told apart by them, so paging skips
// none). Each search term has an
// index: event_id, the reference values (migration 12), refs @>
// (migration 1), received_at.
const eventsSQL = `
SELECT source, COALESCE(original_id, event_id), event_type, status, received_at, last_seen_at,
       duplicate_count, refs, event_id
FROM {{schema}}.inbox_events
WHERE ($1::text IS NULL
       OR event_id = $1
       OR jsonb_path_query_array(refs, '$.*') @> jsonb_build_array($1::text)
       OR jsonb_path_query_array(refs, '$.*') @> jsonb_build_array(lower($1::text)))
AND ($2::text IS NULL OR refs @> jsonb_build_object($2::text, $3::text)
     OR refs @> jsonb_build_object($2::text, lower($3::text)))
AND ($4::text IS NULL OR source = $4)
AND ($5::text IS NULL OR status = $5)
AND ($6::timestamptz IS NULL OR received_at >= $6)
AND ($7::timestamptz IS NULL OR received_at < $7
     OR ($10::text IS NOT NULL AND received_at = $7 AND (source, event_id) < ($9::text, $10::text)))
ORDER BY received_at DESC, source DESC, event_id DESC
LIMIT $8`

// messageColumns are a message's list columns; "retrying" is a pending
// message whose last attempt failed (attempts since its last requeue).
const messageColumns = `
SELECT id, destination, type, coalesce(ordering_key, ''), coalesce(seq, 0), idempotency_key,
       CASE WHEN status = 'pending' AND attempts > attempts_base THEN 'retrying' ELSE status END,
       attempts, next_attempt_at, last_error, last_status_code, created_at, delivered_at,
       coalesce(caused_by_source, ''), coalesce(caused_by_event_id, '')
FROM {{schema}}.outbox_messages`

// messagesSQL lists messages ($1 ids; $2 destination; $3 status as the
// console names it; $4 ordering key; $5 idempotency key; $6 type; $7, $8
// created_at bounds; $9, $10 the causing event; $11 limit; $12 the id of
// the previous page's last row, which ends at $8).
const messagesSQL = messageColumns + `
WHERE ($1::uuid[] IS NULL OR id = ANY($1))
AND ($2::text IS NULL OR destination = $2)
AND ($3::text IS NULL OR status = CASE WHEN $3 IN ('pending', 'retrying') THEN 'pending' ELSE $3 END)
AND ($3::text IS DISTINCT FROM 'pending' OR attempts = attempts_base)
AND ($3::text IS DISTINCT FROM 'retrying' OR attempts > attempts_base)
AND ($4::text IS NULL OR ordering_key = $4)
AND ($5::text IS NULL OR idempotency_key = $5)
AND ($6::text IS NULL OR type = $6)
AND ($7::timestamptz IS NULL OR created_at >= $7)
AND ($8::timestamptz IS NULL OR created_at < $8 OR ($12::uuid IS NOT NULL AND created_at = $8 AND id < $12))
AND ($10::text IS NULL OR (caused_by_source = $9 AND caused_by_event_id = $10))
ORDER BY created_at DESC, id DESC
LIMIT $11`

// destinationsSQL: every destination known from a pause, a live
// dispatcher, or a pending or dead message, with its backlog and the last
// hour's attempts.
const destinationsSQL = `
WITH names AS (
    SELECT name FROM {{schema}}.outbox_destinations
    UNION SELECT unnest(destinations) FROM {{schema}}.outbox_dispatchers WHERE alive_until > now()
    UNION SELECT DISTINCT destination FROM {{schema}}.outbox_messages WHERE status IN ('pending', 'dead')
)
SELECT n.name,
       b.pending, b.oldest,
       (SELECT count(*) FROM {{schema}}.outbox_messages m WHERE m.destination = n.name AND m.status = 'dead'),
       h.delivered, h.failed,
       coalesce(d.paused, false), coalesce(d.reason, ''), d.paused_at
FROM names n
LEFT JOIN {{schema}}.outbox_destinations d ON d.name = n.name
CROSS JOIN LATERAL (
    SELECT count(*) AS pending, min(created_at) AS oldest
    FROM {{schema}}.outbox_messages m WHERE m.destination = n.name AND m.status = 'pending') b
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE a.outcome = 'delivered') AS delivered,
           count(*) FILTER (WHERE a.outcome <> 'delivered') AS failed
    FROM {{schema}}.outbox_attempts a JOIN {{schema}}.outbox_messages m ON m.id = a.message_id
    WHERE m.destination = n.name AND a.attempted_at > now() - interval '1 hour') h
ORDER BY n.name`

// lanesSQL: who holds which lanes of which destination now.
const lanesSQL = `
SELECT l.destination, l.owner, array_agg(l.lane ORDER BY l.lane)::int[], min(l.lease_until)
FROM {{schema}}.outbox_lanes l
WHERE l.owner IS NOT NULL AND l.lease_until > now()
GROUP BY l.destination, l.owner
ORDER BY l.destination, l.owner`

const dispatchersSQL = `
SELECT id, started_at, heartbeat_at, alive_until, destinations
FROM {{schema}}.outbox_dispatchers
WHERE alive_until > now()
ORDER BY id`

// failureSummarySQL: the inbox failure log by source and kind.
const failureSummarySQL = `
SELECT source, kind, count(*), sum(count), max(last_at)
FROM {{schema}}.inbox_failures
GROUP BY source, kind
ORDER BY max(last_at) DESC`

const auditInsertSQL = `
INSERT INTO {{schema}}.console_audit (actor, role, action, destination, filter, count, message_ids)
VALUES ($1, $2, $3, $4, $5, $6, $7)`

const auditColumns = `
SELECT id, at, actor, role, action, coalesce(destination, ''), filter, count
FROM {{schema}}.console_audit`

const auditForMessageSQL = auditColumns + `
WHERE message_ids @> ARRAY[$1::uuid]
ORDER BY at DESC`

const auditRecentSQL = auditColumns + `
ORDER BY at DESC
LIMIT $1`
