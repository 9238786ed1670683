package console

import (
	"strings"

	"github.com/outboxd/outboxd/internal/pendingsql"
)

// The console's own SQL, in one place; dead letters and pauses go through
// the outbox package's operator calls. {{schema}} is replaced by New. A
// filter argument left NULL matches everything.

// eventColumns and eventConds list inbox events ($4 source; $5 status; $6,
// $7 received_at bounds; $8 limit; $9, $10 the source and stored id of the
// last row of the previous page, which ends at $7: rows received at the
// same instant are told apart by them, so paging skips none). A filter
// argument left NULL matches everything.
const eventColumns = `
SELECT source, COALESCE(original_id, event_id), event_type, status, received_at, last_seen_at,
       duplicate_count, refs, event_id`

const eventConds = `
WHERE ($4::text IS NULL OR source = $4)
AND ($5::text IS NULL OR status = $5)
AND ($6::timestamptz IS NULL OR received_at >= $6)
AND ($7::timestamptz IS NULL OR received_at < $7
     OR ($10::text IS NOT NULL AND received_at = $7 AND (source, event_id) < ($9::text, $10::text)))
ORDER BY received_at DESC, source DESC, event_id DESC
LIMIT $8`

// eventsListSQL lists events without a search term: the received_at index,
// newest first. $1 to $3 and $11 are NULL (named so that both queries take
// the same arguments).
var eventsListSQL = eventColumns + `
FROM {{schema}}.inbox_events` + strings.Replace(eventConds, "WHERE", "WHERE $1::text IS NULL AND $2::text IS NULL AND $3::text IS NULL AND $11::text[] IS NULL\nAND", 1)

// eventsSearchSQL finds events by $1, an event id or a reference's value
// whatever its name ($11: the forms $1 as an event id may be stored in, a
// long one by its hash since migration 7), or by $2, $3, one reference's
// name and value; $1 or $2 is NULL. The matches are collected first
// (MATERIALIZED) and only then filtered, sorted and cut: the plan cannot
// be the received_at index walked from the newest row until 100 matches
// turn up, which a planner without statistics picks and which reads the
// whole inbox when a value is rare.
// Each branch uses an index the receipt already maintains:
//   - an event id: the primary key (source, event_id), with every source,
//     found by skipping along that index (one probe per source);
//   - a value: the GIN index on refs (jsonb_path_ops, @>), probed with
//     {name: value} for every reference name in use. Names are read from
//     the newest refNamesNewest events and refNamesPerSource of each
//     source; a name used only by older events is found with name=value.
//
// Values are tried as given and lower-cased, as handlers store emails.
const eventsSearchSQL = `
WITH RECURSIVE sources(s) AS (
    (SELECT source FROM {{schema}}.inbox_events ORDER BY source LIMIT 1)
    UNION ALL
    SELECT (SELECT e.source FROM {{schema}}.inbox_events e WHERE e.source > sources.s ORDER BY e.source LIMIT 1)
    FROM sources WHERE sources.s IS NOT NULL
), sample AS (
    (SELECT refs FROM {{schema}}.inbox_events WHERE $1::text IS NOT NULL ORDER BY received_at DESC LIMIT {{namesNewest}})
    UNION ALL
    SELECT x.refs FROM sources
    CROSS JOIN LATERAL (SELECT refs FROM {{schema}}.inbox_events e WHERE e.source = sources.s LIMIT {{namesPerSource}}) x
    WHERE sources.s IS NOT NULL AND $1::text IS NOT NULL
), wanted AS (
    SELECT DISTINCT jsonb_build_object(k.name, v.v) AS o
    FROM (SELECT DISTINCT jsonb_object_keys(refs) AS name FROM sample) k,
         (VALUES ($1::text), (lower($1::text))) v(v)
    UNION
    SELECT jsonb_build_object($2::text, v.v)
    FROM (VALUES ($3::text), (lower($3::text))) v(v) WHERE $2::text IS NOT NULL
), matches AS MATERIALIZED (
    SELECT e.* FROM {{schema}}.inbox_events e
    WHERE $11::text[] IS NOT NULL AND e.event_id = ANY($11)
      AND e.source = ANY(ARRAY(SELECT s FROM sources WHERE s IS NOT NULL))
    UNION
    SELECT e.* FROM {{schema}}.inbox_events e
    WHERE e.refs @> ANY(ARRAY(SELECT o FROM wanted))
)` + eventColumns + `
FROM matches` + eventConds

// messageSelect are a message's list columns; "retrying" is a pending
// message whose last attempt failed (attempts since its last requeue).
const messageSelect = `
SELECT id, destination, type, coalesce(ordering_key, ''), coalesce(seq, 0), idempotency_key,
       CASE WHEN status = 'pending' AND attempts > attempts_base THEN 'retrying' ELSE status END,
       attempts, next_attempt_at, last_error, last_status_code, created_at, delivered_at,
       coalesce(caused_by_source, ''), coalesce(caused_by_event_id, '')`

const messageColumns = messageSelect + `
FROM {{schema}}.outbox_messages`

// messageConds filter, sort and cut a message list ($1 ids; $2
// destination; $3 status as the console names it; $4 ordering key; $5
// idempotency key; $6 type; $7, $8 created_at bounds; $9 the causing
// event's source, $10 the forms its id may be stored in; $11 limit; $12
// the id of the previous page's last row, which ends at $8).
const messageConds = `
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
AND ($10::text[] IS NULL OR (caused_by_source = $9 AND caused_by_event_id = ANY($10)))
ORDER BY created_at DESC, id DESC
LIMIT $11`

// messagesListSQL lists messages without a key to look up.
const messagesListSQL = messageColumns + messageConds

// messagesSearchSQL first collects, MATERIALIZED, the messages that
// {{match}} finds through an index of its own (see messageMatches), then
// filters, sorts and cuts them: never a walk of another index until 100
// rows turn up, whatever the statistics say.
const messagesSearchSQL = `
WITH RECURSIVE dests(d) AS (
    (SELECT destination FROM {{schema}}.outbox_messages WHERE ` + givenKey + ` ORDER BY destination LIMIT 1)
    UNION ALL
    SELECT (SELECT m.destination FROM {{schema}}.outbox_messages m
            WHERE m.destination > dests.d AND m.` + givenKey + ` ORDER BY m.destination LIMIT 1)
    FROM dests WHERE dests.d IS NOT NULL
), matches AS MATERIALIZED (
    SELECT m.* FROM {{schema}}.outbox_messages m WHERE {{match}}
)` + messageSelect + `
FROM matches` + messageConds

// givenKey is the predicate of outbox_messages_given_key_idx (migration
// 15): the messages whose idempotency key is not their own id's text. It
// implies that of migration 16's outbox_messages_caller_key_idx (which
// adds the messages with the caller's id, found here by the primary key
// as on 15), so the same lookups use that index.
const givenKey = `idempotency_key <> id::text`

// messageMatches are the index lookups of messagesSearchSQL, by what the
// filter has, most selective first: the primary key; an idempotency key in
// both of its forms (outbox/sql.go, dupCTE): through the unique index
// (destination, idempotency_key) of keys given or derived, with every
// destination found by skipping along it when none is given (only the
// ids, dests, are read if so), and through the primary key for a key that
// is a UUID's canonical text; the causing event's index; the ordering
// key's.
var messageMatches = map[string]string{
	"ids": `m.id = ANY($1)`,
	"idempotency_key": `m.id = ANY(ARRAY(
        SELECT g.id FROM {{schema}}.outbox_messages g
        WHERE g.idempotency_key = $5 AND g.` + givenKey + `
          AND g.destination = ANY(CASE WHEN $2::text IS NOT NULL THEN ARRAY[$2::text] ELSE ARRAY(SELECT d FROM dests WHERE d IS NOT NULL) END)
        UNION ALL
        SELECT g.id FROM {{schema}}.outbox_messages g
        WHERE g.id = CASE WHEN $5 ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN $5::uuid END
          AND g.idempotency_key = $5))`,
	"caused_by":    `m.caused_by_source = $9 AND m.caused_by_event_id = ANY($10)`,
	"ordering_key": `m.ordering_key = $4`,
}

// destinationsSQL: every destination known from a pause, a live
// dispatcher, or a pending or dead message, with its backlog and the last
// hour's attempts. Each table is read once, grouped by destination (as the
// metrics collector reads it), never once per destination; the backlog
// through the dispatcher's lane indexes within pendingsql's row budget $1
// (there is no index on pending messages' creation time: one entry less
// per enqueue), the last hour's attempts through
// outbox_attempts_attempted_at_idx (migration 11) and, for first-try
// successes, outbox_messages_delivered_idx. Run through
// pendingsql.InTx.
const destinationsSQL = `
WITH RECURSIVE ` + pendingsql.Destinations + `, pending AS (
    SELECT pd.destination, s.n, s.oldest, s.capped
    FROM pending_destinations pd CROSS JOIN LATERAL ` + pendingsql.Stats + ` s
), dead AS (
    SELECT destination, count(*) AS n
    FROM {{schema}}.outbox_messages WHERE status = 'dead' GROUP BY destination
), hour AS MATERIALIZED (
    -- Bounded on both sides (the upper bound changes nothing): without
    -- statistics the planner guesses a third of the table for a one-sided
    -- range, and reads it all, but a small share for a two-sided one.
    SELECT a.message_id, NULL::text AS destination, a.outcome
    FROM {{schema}}.outbox_attempts a
    WHERE a.attempted_at > now() - interval '1 hour' AND a.attempted_at < 'infinity'
    UNION ALL
    -- First-try successes are recorded on their message's row (migration
    -- 13): found through the delivered index, as their delivery is their
    -- attempt's end.
    SELECT m.id, m.destination, 'delivered'
    FROM {{schema}}.outbox_messages m
    WHERE m.status = 'delivered' AND m.delivered_at > now() - interval '1 hour' AND m.delivered_at < 'infinity'
      AND m.first_attempt_at > now() - interval '1 hour'
), rates AS (
    -- A scalar subquery per attempt: a primary-key probe, never a join
    -- that may read every message.
    SELECT coalesce(h.destination, (SELECT m.destination FROM {{schema}}.outbox_messages m WHERE m.id = h.message_id)) AS destination,
           count(*) FILTER (WHERE h.outcome = 'delivered') AS delivered,
           count(*) FILTER (WHERE h.outcome <> 'delivered') AS failed
    FROM hour h
    GROUP BY 1
), names AS (
    SELECT name FROM {{schema}}.outbox_destinations
    UNION SELECT unnest(destinations) FROM {{schema}}.outbox_dispatchers WHERE alive_until > now()
    UNION SELECT destination FROM pending
    UNION SELECT destination FROM dead
)
SELECT n.name, coalesce(p.n, 0), p.oldest, coalesce(p.capped, false), coalesce(x.n, 0),
       coalesce(r.delivered, 0), coalesce(r.failed, 0),
       coalesce(d.paused, false), coalesce(d.reason, ''), d.paused_at
FROM names n
LEFT JOIN pending p ON p.destination = n.name
LEFT JOIN dead x ON x.destination = n.name
LEFT JOIN rates r ON r.destination = n.name
LEFT JOIN {{schema}}.outbox_destinations d ON d.name = n.name
ORDER BY n.name`

// destinationKnownSQL: a destination configured ($2), paused before, served by a live
// dispatcher, or with messages; pausing any other name (a typo) is a 404.
const destinationKnownSQL = `
SELECT $1 = ANY($2::text[])
    OR EXISTS (SELECT 1 FROM {{schema}}.outbox_destinations WHERE name = $1)
    OR EXISTS (SELECT 1 FROM {{schema}}.outbox_dispatchers WHERE alive_until > now() AND $1 = ANY(destinations))
    OR EXISTS (SELECT 1 FROM {{schema}}.outbox_messages WHERE destination = $1)`

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
