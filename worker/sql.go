package worker

// The dispatcher's SQL, in one place. {{schema}} is replaced once by New.

import (
	"fmt"
	"strings"

	"github.com/outboxd/outboxd/internal/pendingsql"
)

// numLanes matches the lane column's modulus in migration 00004.
const numLanes = 32

// heartbeatSQL registers this dispatcher, the destinations it serves and
// how long it counts as live without another heartbeat (its lease TTL).
const heartbeatSQL = `
INSERT INTO {{schema}}.outbox_dispatchers (id, destinations, alive_until)
VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond')
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(),
    destinations = excluded.destinations, alive_until = excluded.alive_until`

// liveByDestinationSQL forgets dispatchers that are no longer live and
// counts, for each of the given destinations, the live ones that serve it.
const liveByDestinationSQL = `
WITH gone AS (
    DELETE FROM {{schema}}.outbox_dispatchers WHERE alive_until <= now()
)
SELECT d, count(x.id)
FROM unnest($1::text[]) AS d
LEFT JOIN {{schema}}.outbox_dispatchers x ON x.alive_until > now() AND d = ANY (x.destinations)
GROUP BY d`

const forgetDispatcherSQL = `DELETE FROM {{schema}}.outbox_dispatchers WHERE id = $1`

// schemaProbeSQL reads, without a row, the newest columns this version's
// statements use (migration 13): a dispatcher started before `migrate up`
// would send messages and then fail to record them, and send them again,
// for as long as it ran.
//
// It also tells, in one round trip, whether the retry heads' index
// (migration 14) is there and valid: without it claimRetriesSQL would read
// the lane's whole keyed backlog, and a CONCURRENTLY build cut short
// leaves one that exists but is not used. And whether the other tables
// the dispatcher's statements use exist (by name, which needs no
// privilege on them): one renamed or dropped by hand fails the probe as a
// migration taken back does. Without them, a renamed outbox_attempts
// (which every recording names) had the probe find the schema current a
// second after each failed recording, and the lanes claim and send again
// (an operator's trial).
const schemaProbeSQL = `
SELECT coalesce((SELECT indisvalid AND indisready FROM pg_index
                 WHERE indexrelid = to_regclass('{{schema}}.outbox_messages_retry_heads_idx')), false),
       coalesce(to_regclass('{{schema}}.outbox_attempts') IS NOT NULL AND to_regclass('{{schema}}.outbox_lanes') IS NOT NULL
                AND to_regclass('{{schema}}.outbox_dispatchers') IS NOT NULL AND to_regclass('{{schema}}.outbox_destinations') IS NOT NULL, false)
FROM (SELECT first_attempt_at, first_attempt_ms, first_attempt_body, first_attempt_by
      FROM {{schema}}.outbox_messages LIMIT 0) AS columns_of_13 RIGHT JOIN (VALUES (1)) AS one(x) ON true`

// ensureLanesSQL creates the lease rows of the given destinations.
const ensureLanesSQL = `
INSERT INTO {{schema}}.outbox_lanes (destination, lane)
SELECT d, l FROM unnest($1::text[]) AS d, generate_series(0, 31) AS l
ON CONFLICT DO NOTHING`

// renewSQL extends only the leases that a running runner of ours holds,
// each under the token it acquired: a lease whose runner is gone (a
// restart under the same id, a failed release) is left to expire.
const renewSQL = `
UPDATE {{schema}}.outbox_lanes l
SET lease_until = now() + $2::bigint * interval '1 millisecond'
FROM unnest($3::text[], $4::smallint[], $5::bigint[]) AS h(destination, lane, token)
WHERE l.destination = h.destination AND l.lane = h.lane AND l.token = h.token
  AND l.owner = $1 AND l.lease_until > now()
RETURNING l.destination, l.lane`

// acquireSQL takes up to $4 lanes of destination $3 whose lease has
// expired, each with a new token. SKIP LOCKED lets dispatchers that acquire
// at the same moment take different lanes.
const acquireSQL = `
UPDATE {{schema}}.outbox_lanes l
SET owner = $1, token = l.token + 1, lease_until = now() + $2::bigint * interval '1 millisecond'
WHERE (l.destination, l.lane) IN (
    SELECT destination, lane FROM {{schema}}.outbox_lanes
    WHERE destination = $3 AND lease_until <= now()
    ORDER BY lane
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
RETURNING l.lane, l.token`

const releaseSQL = `
UPDATE {{schema}}.outbox_lanes l SET owner = NULL, lease_until = '-infinity'
FROM unnest($2::text[], $3::smallint[], $4::bigint[]) AS h(destination, lane, token)
WHERE l.destination = h.destination AND l.lane = h.lane AND l.token = h.token AND l.owner = $1`

// claimSQL returns the next batch of one destination's lane, and nothing
// unless the lease ($3, $4) is still ours in its snapshot. It only reads:
// a lock on the lease row would last no longer than the statement, while
// the sends come after it, guarded by the runner's lease deadline (which
// also stops a batch claimed in a race with a takeover), yet would give
// every claim a transaction id and a commit waiting for a WAL flush: about
// 1 ms between a wake-up and the first request, and a flush per idle lane
// and sweep (TestClaimWritesNothing).
//
// It reads only the heads of the lane's ordering keys, never the backlog
// behind them: heads walks the keyed pending index one key at a time (a
// skip scan: one index probe per key with pending messages, whatever the
// number of messages behind each head), due keeps the keys whose head is
// due, oldest head first (a long-lived key is never starved by new ones),
// and only for those does the LATERAL read up to $5 messages in sequence,
// as long as each is due (the running bool_and). A key's rows stay
// together in sequence, so LIMIT never keeps a message without the ones
// before it. picked carries ids only: the payloads of the up to $5 x $6
// candidates are not read, only those of the $6 kept, by primary key. Due unkeyed messages come oldest due first, from their own
// index. Every step is an index range with a LIMIT, so the plan needs no
// statistics (see TestHotPathPlansUseIndexesWithoutStatistics).
const claimTmpl = claimLease + `, heads AS (
    (SELECT m.ordering_key, m.seq, m.next_attempt_at, m.created_at, m.attempts > m.attempts_base AS retry
     FROM {{schema}}.outbox_messages m
     WHERE m.destination = $1 AND m.lane = $2 AND m.status = 'pending' AND m.ordering_key IS NOT NULL
       AND EXISTS (SELECT 1 FROM lease)
     ORDER BY m.ordering_key, m.seq
     LIMIT 1)
    UNION ALL
    SELECT n.* FROM heads h CROSS JOIN LATERAL (
        SELECT m.ordering_key, m.seq, m.next_attempt_at, m.created_at, m.attempts > m.attempts_base
        FROM {{schema}}.outbox_messages m
        WHERE m.destination = $1 AND m.lane = $2 AND m.status = 'pending' AND m.ordering_key IS NOT NULL
          AND m.ordering_key > h.ordering_key
        ORDER BY m.ordering_key, m.seq
        LIMIT 1) n
), due AS (
    SELECT ordering_key, seq, created_at AS head_at, CASE WHEN retry THEN 1 ELSE $5 END AS take FROM heads
    WHERE next_attempt_at <= now(){{notkeys:}}
    ORDER BY created_at, ordering_key
    LIMIT $6
)` + claimBatch

// claimRetriesSQL is claimSQL without the walk. The keys it takes are
// those whose head failed an attempt since it was queued (or requeued) and
// is due again, read oldest due first from the retry heads' index
// (migration 14), and the
// keys $8 (those the runner's last batch delivered or dead-lettered a
// message of: their next message has never been tried), so it costs what
// is due, not the number of keys waiting. It misses the other keys whose
// head has not been tried: a new key's first message and a requeued one,
// whose commits wake the lane, and a wake-up is followed by claimSQL
// (walk.go says when else a runner walks); and a head whose attempt was
// abandoned (a stop, a lost lease: the lane's next holder walks first). Only heads are tried, but a requeue can put a
// tried message behind an older pending one of its key: the subquery
// (one probe per retry: a correlated NOT EXISTS was planned as an anti
// join reading the whole lane) keeps it from jumping its key's order.
const claimRetriesTmpl = claimLease + `, due AS (
    (SELECT m.ordering_key, m.seq, m.created_at AS head_at, 1 AS take
     FROM {{schema}}.outbox_messages m
     WHERE m.destination = $1 AND m.lane = $2 AND m.status = 'pending' AND m.ordering_key IS NOT NULL
       AND m.attempts > m.attempts_base
       AND m.next_attempt_at <= now(){{notkeys:m.}}
       AND EXISTS (SELECT 1 FROM lease)
       AND m.seq = (
           SELECT b.seq FROM {{schema}}.outbox_messages b
           WHERE b.destination = $1 AND b.lane = $2 AND b.status = 'pending' AND b.ordering_key IS NOT NULL
             AND b.ordering_key = m.ordering_key
           ORDER BY b.seq
           LIMIT 1)
     ORDER BY m.next_attempt_at
     LIMIT $6)
    UNION
    SELECT h.ordering_key, h.seq, h.created_at, CASE WHEN h.retry THEN 1 ELSE $5 END
    FROM unnest($8::text[]) AS k(key) CROSS JOIN LATERAL (
        SELECT m.ordering_key, m.seq, m.created_at, m.next_attempt_at, m.attempts > m.attempts_base AS retry
        FROM {{schema}}.outbox_messages m
        WHERE m.destination = $1 AND m.lane = $2 AND m.status = 'pending' AND m.ordering_key IS NOT NULL
          AND m.ordering_key = k.key AND EXISTS (SELECT 1 FROM lease)
        ORDER BY m.seq
        LIMIT 1) h
    WHERE h.next_attempt_at <= now(){{notkeys:h.}}
)` + claimBatch

// The claims as a runner with no attempts still running sends them, and
// the same with the keys and ids of those attempts left out (claimAround):
// their messages are pending, and taken again they would be sent twice.
var (
	claimSQL        = claimAround(claimTmpl, 0)
	claimRetriesSQL = claimAround(claimRetriesTmpl, 0)
)

// claimAround renders a claim template: without exclusions for first == 0,
// else leaving out the ordering keys $first (text[]) and the unkeyed
// messages' ids $first+1 (uuid[]), both never NULL.
func claimAround(tmpl string, first int) string {
	if first == 0 {
		return strings.NewReplacer("{{notkeys:}}", "", "{{notkeys:m.}}", "", "{{notkeys:h.}}", "", "{{notids}}", "").Replace(tmpl)
	}
	keys := func(col string) string { return fmt.Sprintf(" AND %sordering_key <> ALL($%d::text[])", col, first) }
	return strings.NewReplacer("{{notkeys:}}", keys(""), "{{notkeys:m.}}", keys("m."), "{{notkeys:h.}}", keys("h."),
		"{{notids}}", fmt.Sprintf(" AND m.id <> ALL($%d::uuid[])", first+1)).Replace(tmpl)
}

// idleProbeSQL returns which of the parked lanes ($1, $2) a claim may
// find something in (idle.go): a keyed pending message (due or not: its
// index has no time, and a lane with keyed messages waiting is claimed as
// before), or a due unkeyed one. Two index probes a lane, each stopping at
// its first entry, whatever the backlog: no statistics needed
// (TestHotPathPlansUseIndexesWithoutStatistics). Written as EXISTS ... OR
// EXISTS, it was planned as hashed subplans reading every keyed pending
// message; a LATERAL with LIMIT cannot be.
const idleProbeSQL = `
SELECT p.destination, p.lane
FROM unnest($1::text[], $2::smallint[]) AS p(destination, lane)
CROSS JOIN LATERAL (
    (SELECT 1 FROM {{schema}}.outbox_messages m
     WHERE m.destination = p.destination AND m.lane = p.lane AND m.status = 'pending'
       AND m.ordering_key IS NOT NULL
     ORDER BY m.ordering_key, m.seq
     LIMIT 1)
    UNION ALL
    (SELECT 1 FROM {{schema}}.outbox_messages m
     WHERE m.destination = p.destination AND m.lane = p.lane AND m.status = 'pending'
       AND m.ordering_key IS NULL AND m.next_attempt_at <= now()
     ORDER BY m.next_attempt_at
     LIMIT 1)
    LIMIT 1) found`

// claimLease opens both claims: the lease check.
const claimLease = `
WITH RECURSIVE lease AS (
    SELECT 1 FROM {{schema}}.outbox_lanes
    WHERE destination = $1 AND lane = $2 AND owner = $3 AND token = $4 AND lease_until > now()
)`

// claimBatch ends both claims: from the due keys' heads, up to take
// messages of each in sequence ($5, or only the head when it is a retry:
// a head that has been failing most likely fails again, and the messages
// behind it, read with their payloads, would only be carried and left),
// the batch's rows with payloads, then the due unkeyed messages.
//
// Each of the two parts also stops at $7 bytes (Config.BatchBytes): it
// keeps a message only while the bytes of those before it (msgBytes) are
// under $7, so the part's first message goes whatever its size, and a key
// keeps its messages in sequence (the rows kept are a prefix of the
// part's order). The rows past the bound come back cut: without payload
// and headers, so that the runner knows the part was cut, and which keys
// it left out, which the next claim takes without walking the lane
// (laneRunner.claimRows). The sizes come from the rows, not from their
// TOASTed values (msgBytes), except headers stored compressed, whose text
// is counted: a claim detoasts those of up to $6 rows per part.
const claimBatch = `, picked AS (
    SELECT id, head_at, ordering_key, seq FROM (
        SELECT m.id, m.ordering_key, m.seq, d.head_at,
               bool_and(m.next_attempt_at <= now()) OVER (PARTITION BY m.ordering_key ORDER BY m.seq) AS ready
        FROM due d CROSS JOIN LATERAL (
            SELECT m.id, m.ordering_key, m.seq, m.next_attempt_at FROM {{schema}}.outbox_messages m
            WHERE m.destination = $1 AND m.lane = $2 AND m.status = 'pending' AND m.ordering_key IS NOT NULL
              AND m.ordering_key = d.ordering_key AND m.seq >= d.seq
            ORDER BY m.seq
            LIMIT d.take) m
    ) k
    WHERE ready
    ORDER BY head_at, ordering_key, seq
    LIMIT $6
)
(SELECT ` + claimedCols + ` FROM (
    SELECT s.*, sum(s.size) OVER (ORDER BY s.head_at, s.ordering_key, s.seq ROWS UNBOUNDED PRECEDING) AS upto
    FROM (SELECT ` + claimedRow + `, p.head_at
          FROM picked p JOIN {{schema}}.outbox_messages m ON m.id = p.id
          OFFSET 0) s
    ORDER BY s.head_at, s.ordering_key, s.seq) c)
UNION ALL
(SELECT ` + claimedCols + ` FROM (
    SELECT s.*, sum(s.size) OVER (ORDER BY s.next_attempt_at ROWS UNBOUNDED PRECEDING) AS upto
    FROM (SELECT ` + claimedRow + `, m.next_attempt_at
          FROM {{schema}}.outbox_messages m
          WHERE m.destination = $1 AND m.lane = $2 AND m.status = 'pending' AND m.ordering_key IS NULL
            AND m.next_attempt_at <= now(){{notids}}
            AND EXISTS (SELECT 1 FROM lease)
          ORDER BY m.next_attempt_at
          LIMIT $6) s) c)`

// claimedRow is what a claim reads of a message, and claimedCols what it
// returns (laneRunner.claimRows). age_ms is the message's age on the
// database's clock, for the retry policy's MaxAge. The size is computed
// in a subquery of its own (OFFSET 0 keeps the planner from inlining it),
// once per row: written in the window too, it was computed twice, and
// compressed headers turned into text twice.
const (
	claimedRow = `m.id, m.destination, m.type, m.ordering_key, m.seq, m.payload, m.headers,
        m.idempotency_key, m.attempts, m.attempts_base, m.created_at,
        (extract(epoch FROM now() - coalesce(m.requeued_at, m.created_at)) * 1000)::bigint AS age_ms,
        ` + msgBytes + ` AS size`
	claimedCols = `id, destination, type, ordering_key, seq,
        CASE WHEN upto - size < $7 THEN payload END, CASE WHEN upto - size < $7 THEN headers END,
        idempotency_key, attempts, attempts_base, created_at, age_ms, upto - size >= $7 AS cut`
)

// msgBytes is what a claimed message weighs against Config.BatchBytes:
// its payload's length (read from the value's header, even when the
// value is compressed) and its headers' (as stored, or, when compressed,
// their text: many large headers compress to little). It is an integer
// (each term is under 2^30, PostgreSQL's largest value), so that its sum
// is a bigint: a bigint's sum is a numeric, whose arithmetic doubled what
// the claim costs the server per message (bench-record's claim-only).
const msgBytes = `(octet_length(m.payload) + CASE WHEN pg_column_compression(m.headers) IS NULL
    THEN pg_column_size(m.headers) ELSE octet_length(m.headers::text) END)`

// recordSQL stores a batch's results and its attempt rows in one statement,
// only while the lease ($1, $2, $3, $4) is still ours; the lease row is
// share-locked so that no takeover (FOR UPDATE SKIP LOCKED) slips in
// between the check and the commit. It returns the ids it stored. Times are
// the database's: the next attempt is now() plus the backoff, the attempt
// time now() minus how long ago (on our monotonic clock) it started. An
// abandoned attempt (cut off by our own stop or lease) gets its budget back
// (attempts_base), so it never counts towards dead-lettering. A first-try
// success (the message's attempt 1, delivered) is recorded on the
// message's row (first_attempt_*, migration 13) instead of in an attempt
// row: most deliveries are that, and the insert cost two index entries and
// a foreign-key check each. outbox_attempt_log shows both kinds.
//
// A message is stored only if its attempts are still what its claim read
// ($14): a try of the same results that stored them already (its answer
// lost, or still running on the server behind a lock when its connection
// broke) is not stored twice (a review's: a retry's attempt counted
// twice, a second attempt row).
const recordSQL = `
WITH r AS (
    SELECT * FROM unnest($5::uuid[], $6::text[], $7::text[], $8::bigint[],
                         $9::text[], $10::int[], $11::bigint[], $12::float8[], $13::text[], $14::int[])
        AS r(id, new_status, outcome, delay_ms, error, status_code, ago_us, duration_ms, body, before)
), lease AS (
    SELECT 1 FROM {{schema}}.outbox_lanes l
    WHERE l.destination = $1 AND l.lane = $2 AND l.owner = $3 AND l.token = $4 AND l.lease_until > now()
    FOR KEY SHARE
), upd AS (
    UPDATE {{schema}}.outbox_messages m SET
        status           = r.new_status,
        attempts         = m.attempts + 1,
        attempts_base    = m.attempts_base + CASE WHEN r.outcome = 'abandoned' THEN 1 ELSE 0 END,
        next_attempt_at  = now() + r.delay_ms * interval '1 millisecond',
        last_error       = r.error,
        last_status_code = nullif(r.status_code, 0),
        delivered_at     = CASE WHEN r.new_status = 'delivered' THEN now() END,
        first_attempt_at   = CASE WHEN m.attempts = 0 AND r.new_status = 'delivered'
                                  THEN now() - r.ago_us * interval '1 microsecond' END,
        first_attempt_ms   = CASE WHEN m.attempts = 0 AND r.new_status = 'delivered' THEN r.duration_ms END,
        first_attempt_body = CASE WHEN m.attempts = 0 AND r.new_status = 'delivered' THEN nullif(r.body, '') END,
        first_attempt_by   = CASE WHEN m.attempts = 0 AND r.new_status = 'delivered' THEN $3 END
    FROM r
    WHERE m.id = r.id AND m.status = 'pending' AND m.attempts = r.before AND EXISTS (SELECT 1 FROM lease)
    RETURNING m.id, m.attempts, m.first_attempt_at IS NOT NULL AS inline
), ins AS (
    INSERT INTO {{schema}}.outbox_attempts
        (message_id, attempt, attempted_at, duration_ms, outcome, status_code, error, response_body, dispatcher)
    SELECT upd.id, upd.attempts, now() - r.ago_us * interval '1 microsecond', r.duration_ms, r.outcome,
           nullif(r.status_code, 0), r.error, r.body, $3
    FROM upd JOIN r ON r.id = upd.id
    WHERE NOT upd.inline
)
SELECT id FROM upd`

// recordedBeforeSQL finds which messages ($5) of a batch an earlier try of
// its recording stored, its answer lost (the connection broke after the
// commit): while the lease ($1-$4) is ours nobody else attempts them, so
// a message whose attempts grew by one since its claim ($6) was recorded
// by that try. Its status and the milliseconds until its next attempt.
const recordedBeforeSQL = `
SELECT m.id, m.status, greatest(0, ceil(extract(epoch FROM m.next_attempt_at - now()) * 1000))::bigint
FROM unnest($5::uuid[], $6::int[]) AS r(id, before)
JOIN {{schema}}.outbox_messages m ON m.id = r.id
WHERE m.attempts = r.before + 1
  AND EXISTS (SELECT 1 FROM {{schema}}.outbox_lanes l
              WHERE l.destination = $1 AND l.lane = $2 AND l.owner = $3 AND l.token = $4 AND l.lease_until > now())`

// unservedSQL finds destinations with pending messages that no live
// dispatcher serves, with their counts (read through the lane indexes
// within a budget of $1 rows, pendingsql.Budget). The distinct pending destinations come
// from a walk of those indexes (one probe per destination), not a scan of
// the backlog.
const unservedSQL = `
WITH RECURSIVE ` + pendingsql.Destinations + `
SELECT pd.destination, s.n, s.capped
FROM pending_destinations pd CROSS JOIN LATERAL ` + pendingsql.Stats + ` s
WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.outbox_dispatchers x
                  WHERE x.alive_until > now() AND pd.destination = ANY (x.destinations))`

// pauseSQL records a 410's pause; a destination already paused (by an
// operator, or an earlier 410) keeps its reason and time.
const pauseSQL = `
INSERT INTO {{schema}}.outbox_destinations (name, paused, reason, paused_at)
VALUES ($1, true, $2, now())
ON CONFLICT (name) DO UPDATE SET paused = true, reason = excluded.reason, paused_at = now()
WHERE NOT {{schema}}.outbox_destinations.paused`

const pausedSQL = `SELECT name FROM {{schema}}.outbox_destinations WHERE paused`

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

// indexPlanSQL, run first in the delivered purge's transaction, leaves the
// planner no choice but an index scan that stops at the LIMIT: without
// statistics (a table never analyzed) it takes a Sort over a Bitmap Heap
// Scan, which reads every retained message to delete a batch. SET LOCAL:
// the transaction's end restores the settings.
const indexPlanSQL = `SELECT set_config('enable_bitmapscan', 'off', true),
       set_config('enable_sort', 'off', true), set_config('enable_seqscan', 'off', true)`

const purgeDeliveredSQL = `
DELETE FROM {{schema}}.outbox_messages
WHERE id IN (
    SELECT id FROM {{schema}}.outbox_messages
    WHERE status = 'delivered' AND delivered_at < now() - $2::bigint * interval '1 millisecond'
    -- Oldest first, walking the delivered index; indexPlanSQL makes that
    -- the plan (an index scan that stops after $1 rows) even where the
    -- statistics would have a bitmap collect every retained message first.
    ORDER BY delivered_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED)`

const purgeFailuresSQL = `
DELETE FROM {{schema}}.inbox_failures
WHERE (source, event_id, kind) IN (
    SELECT source, event_id, kind FROM {{schema}}.inbox_failures
    WHERE last_at < now() - $2::bigint * interval '1 millisecond'
    LIMIT $1
    FOR UPDATE SKIP LOCKED)`

// purgeKeysSQL deletes ordering keys that no message names any more (the
// purge removed the last delivered one), $1 candidates at a time after the
// key $2, and returns the last candidate and how many it deleted. A key is
// deleted only if no message of any status has it (the sequence restarts
// at 1 for its next message, and (ordering_key, seq) is unique), and only
// in the version the check saw: an enqueue that bumped last_seq since (its
// message invisible to this statement's snapshot) changes the row, so the
// locking re-check of last_seq drops the key from the batch; a key an
// enqueue holds right now is skipped. An enqueue that comes after the
// delete starts the key afresh, which is safe: nothing of it is left.
const purgeKeysSQL = `
WITH candidates AS (
    SELECT ordering_key, last_seq FROM {{schema}}.outbox_keys
    WHERE ordering_key > $2
    ORDER BY ordering_key
    LIMIT $1
), idle AS (
    SELECT k.ordering_key FROM {{schema}}.outbox_keys k
    JOIN candidates c ON c.ordering_key = k.ordering_key AND c.last_seq = k.last_seq
    -- The batch's range, so that the join probes the primary key instead
    -- of hashing the whole table on every batch.
    WHERE k.ordering_key > $2 AND k.ordering_key <= (SELECT max(ordering_key) FROM candidates)
      AND NOT EXISTS (SELECT 1 FROM {{schema}}.outbox_messages m WHERE m.ordering_key = c.ordering_key)
    FOR UPDATE OF k SKIP LOCKED
), gone AS (
    DELETE FROM {{schema}}.outbox_keys k USING idle i
    WHERE k.ordering_key = i.ordering_key
    RETURNING 1
)
SELECT coalesce((SELECT max(ordering_key) FROM candidates), ''), (SELECT count(*) FROM gone)`
