package worker

// The dispatcher's SQL, in one place. {{schema}} is replaced once by New.

// numLanes matches the lane column's modulus in migration 00004.
const numLanes = 32

const heartbeatSQL = `
INSERT INTO {{schema}}.outbox_dispatchers (id) VALUES ($1)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`

// liveDispatchersSQL forgets dispatchers that stopped heartbeating and
// counts the rest.
const liveDispatchersSQL = `
WITH gone AS (
    DELETE FROM {{schema}}.outbox_dispatchers
    WHERE heartbeat_at < now() - $1::bigint * interval '1 millisecond'
)
SELECT count(*) FROM {{schema}}.outbox_dispatchers
WHERE heartbeat_at >= now() - $1::bigint * interval '1 millisecond'`

const forgetDispatcherSQL = `DELETE FROM {{schema}}.outbox_dispatchers WHERE id = $1`

const renewSQL = `
UPDATE {{schema}}.outbox_lanes
SET lease_until = now() + $2::bigint * interval '1 millisecond'
WHERE owner = $1 AND lease_until > now()
RETURNING lane`

// acquireSQL takes up to $3 lanes whose lease has expired. SKIP LOCKED lets
// dispatchers that acquire at the same moment take different lanes.
const acquireSQL = `
UPDATE {{schema}}.outbox_lanes l
SET owner = $1, lease_until = now() + $2::bigint * interval '1 millisecond'
WHERE l.lane IN (
    SELECT lane FROM {{schema}}.outbox_lanes
    WHERE lease_until <= now()
    ORDER BY lane
    LIMIT $3
    FOR UPDATE SKIP LOCKED)
RETURNING l.lane`

const releaseSQL = `
UPDATE {{schema}}.outbox_lanes SET owner = NULL, lease_until = '-infinity'
WHERE lane = ANY($2) AND owner = $1`

// claimSQL returns a lane's next batch: for each ordering key its next
// messages in sequence, as long as each is due and its destination not
// paused (row_number and the running bool_and over the key's window), and
// due unkeyed messages. Keyed rows come ordered by their place in the key,
// so LIMIT never keeps a message without the ones before it.
const claimSQL = `
WITH paused AS (SELECT name FROM {{schema}}.outbox_destinations WHERE paused)
(SELECT id, destination, type, ordering_key, seq, payload, headers,
        idempotency_key, attempts, attempts_base, created_at, coalesce(requeued_at, created_at)
 FROM (
    SELECT m.*, row_number() OVER w AS rn,
           bool_and(m.next_attempt_at <= now() AND m.destination NOT IN (SELECT name FROM paused)) OVER w AS ready
    FROM {{schema}}.outbox_messages m
    WHERE m.lane = $1 AND m.status = 'pending' AND m.ordering_key IS NOT NULL
    WINDOW w AS (PARTITION BY m.ordering_key ORDER BY m.seq)
 ) k
 WHERE ready AND rn <= $2
 ORDER BY rn, seq
 LIMIT $3)
UNION ALL
(SELECT id, destination, type, ordering_key, seq, payload, headers,
        idempotency_key, attempts, attempts_base, created_at, coalesce(requeued_at, created_at)
 FROM {{schema}}.outbox_messages m
 WHERE m.lane = $1 AND m.status = 'pending' AND m.ordering_key IS NULL
   AND m.next_attempt_at <= now()
   AND m.destination NOT IN (SELECT name FROM paused)
 ORDER BY m.next_attempt_at
 LIMIT $3)`

// recordSQL stores a batch's results and its attempt rows in one statement,
// only while this dispatcher still holds the lane.
const recordSQL = `
WITH r AS (
    SELECT * FROM unnest($3::uuid[], $4::text[], $5::text[], $6::timestamptz[],
                         $7::text[], $8::int[], $9::timestamptz[], $10::float8[], $11::text[])
        AS r(id, new_status, outcome, next_at, error, status_code, attempted_at, duration_ms, body)
), upd AS (
    UPDATE {{schema}}.outbox_messages m SET
        status           = r.new_status,
        attempts         = m.attempts + 1,
        next_attempt_at  = r.next_at,
        last_error       = r.error,
        last_status_code = nullif(r.status_code, 0),
        delivered_at     = CASE WHEN r.new_status = 'delivered' THEN now() END
    FROM r
    WHERE m.id = r.id AND m.status = 'pending'
      AND EXISTS (SELECT 1 FROM {{schema}}.outbox_lanes l
                  WHERE l.lane = $1 AND l.owner = $2 AND l.lease_until > now())
    RETURNING m.id, m.attempts
)
INSERT INTO {{schema}}.outbox_attempts
    (message_id, attempt, attempted_at, duration_ms, outcome, status_code, error, response_body, dispatcher)
SELECT upd.id, upd.attempts, r.attempted_at, r.duration_ms, r.outcome, nullif(r.status_code, 0), r.error, r.body, $2
FROM upd JOIN r ON r.id = upd.id`

const pauseSQL = `
INSERT INTO {{schema}}.outbox_destinations (name, paused, reason, paused_at)
VALUES ($1, true, $2, now())
ON CONFLICT (name) DO UPDATE SET paused = true, reason = excluded.reason, paused_at = now()`

const pausedSQL = `SELECT name FROM {{schema}}.outbox_destinations WHERE paused`

// dueLanesSQL lists lanes with due work, for the re-kick job.
const dueLanesSQL = `
SELECT DISTINCT lane FROM {{schema}}.outbox_messages
WHERE status = 'pending' AND next_attempt_at <= now()`

const notifySQL = `SELECT pg_notify($1, $2)`

// The purge statements delete at most $1 rows each and skip rows that a
// receipt or a dispatcher holds, so they never wait on, nor hold up, live
// traffic.
const purgeInboxSQL = `
DELETE FROM {{schema}}.inbox_events
WHERE (source, event_id) IN (
    SELECT source, event_id FROM {{schema}}.inbox_events
    WHERE expires_at < now() AND status <> 'received'
    LIMIT $1
    FOR UPDATE SKIP LOCKED)`

const purgeDeliveredSQL = `
DELETE FROM {{schema}}.outbox_messages
WHERE id IN (
    SELECT id FROM {{schema}}.outbox_messages
    WHERE status = 'delivered' AND delivered_at < now() - $2::bigint * interval '1 millisecond'
    LIMIT $1
    FOR UPDATE SKIP LOCKED)`

const purgeFailuresSQL = `
DELETE FROM {{schema}}.inbox_failures
WHERE (source, event_id, kind) IN (
    SELECT source, event_id, kind FROM {{schema}}.inbox_failures
    WHERE last_at < now() - $2::bigint * interval '1 millisecond'
    LIMIT $1
    FOR UPDATE SKIP LOCKED)`
