package outbox

// Operator queries: dead letters, attempts, destination pauses. A filter
// argument left NULL matches everything.

// filterSQL selects messages by status and the Filter's fields ($1 status,
// $2 ids, $3 destination, $4 type, $5 since, $6 until, $7 ordering key, $8
// idempotency key).
const filterSQL = `
status = $1
AND ($2::uuid[] IS NULL OR id = ANY($2))
AND ($3::text IS NULL OR destination = $3)
AND ($4::text IS NULL OR type = $4)
AND ($5::timestamptz IS NULL OR created_at >= $5)
AND ($6::timestamptz IS NULL OR created_at < $6)
AND ($7::text IS NULL OR ordering_key = $7)
AND ($8::text IS NULL OR idempotency_key = $8)`

const listSQL = `
SELECT id, destination, type, ordering_key, seq, payload, headers,
       idempotency_key, caused_by_source, caused_by_event_id, step, status,
       attempts, next_attempt_at, last_error, last_status_code, created_at,
       delivered_at
FROM {{schema}}.outbox_messages
WHERE ` + filterSQL + `
ORDER BY created_at, id
LIMIT $9`

// requeueSQL puts dead messages back with a fresh attempt budget and age;
// attempt numbers continue and the idempotency key is unchanged.
const requeueSQL = `
UPDATE {{schema}}.outbox_messages
SET status = 'pending', attempts_base = attempts, requeued_at = now(), next_attempt_at = now()
WHERE ` + filterSQL + `
RETURNING id`

const purgeSQL = `DELETE FROM {{schema}}.outbox_messages WHERE ` + filterSQL + `
RETURNING id`

// idsSQL lists the ids a requeue or purge with the same filter would touch.
const idsSQL = `SELECT id FROM {{schema}}.outbox_messages WHERE ` + filterSQL + `
ORDER BY id`

// countSQL counts what a requeue or purge with the same filter would touch.
const countSQL = `SELECT count(*) FROM {{schema}}.outbox_messages WHERE ` + filterSQL

// pauseSQL is the operator's pause; the dispatcher has its own for a 410
// (worker/sql.go), which keeps the first reason.
const pauseSQL = `
INSERT INTO {{schema}}.outbox_destinations (name, paused, reason, paused_at)
VALUES ($1, true, $2, now())
ON CONFLICT (name) DO UPDATE SET paused = true, reason = excluded.reason, paused_at = now()
WHERE NOT {{schema}}.outbox_destinations.paused`

// attemptsSQL reads the attempt log (migration 13): the attempt rows and
// a first-try success, which is recorded on the message's row.
const attemptsSQL = `
SELECT attempt, attempted_at, duration_ms, outcome, status_code, error, response_body, dispatcher
FROM {{schema}}.outbox_attempt_log
WHERE message_id = $1
ORDER BY attempt`

const resumeSQL = `
UPDATE {{schema}}.outbox_destinations SET paused = false, reason = '', paused_at = NULL
WHERE name = $1 AND paused`

const pausedListSQL = `
SELECT name, reason, paused_at FROM {{schema}}.outbox_destinations WHERE paused ORDER BY name`

const servedSQL = `
SELECT EXISTS (SELECT 1 FROM {{schema}}.outbox_dispatchers
               WHERE alive_until > now() AND $1 = ANY (destinations))`
