#!/bin/bash
# Measures the levers on what a first-try delivery writes (issue 9,
# section 1), each on a fresh database: WAL bytes per delivery, updates and
# how many were HOT, attempt rows inserted. 20,000 keyed messages
# (300-byte payloads) generated in SQL, delivered in transactions of 200 as
# the dispatcher records its batches. Index entries follow from the counts:
# a non-HOT update adds one entry to every index whose predicate the new
# row meets; a HOT update and a DELETE add none.
#
# Then the enqueue side: 5,000 one-message transactions (pgbench, one
# client, the statement Enqueue runs for an unkeyed message; no trigger
# fires on insert since migration 10): before migration 12 (with
# pending_created_idx), and today without a cause, with
# the caller's key and with a key derived from an inbox event.
#
#   make bench-levers                       # needs psql, pgbench and a local server
#   OUTBOXD=bin/outboxd PGURL=postgres://postgres@127.0.0.1:5432 N=20000 internal/bench/levers/levers.sh
set -e
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
OUTBOXD=${OUTBOXD:-bin/outboxd}
P="psql -X -q -At"
PGWAL=${PGWAL:-$($P "$PGURL/postgres" -c "SHOW data_directory")/pg_wal}
# Debian keeps pg_waldump out of PATH.
PGWALDUMP=${PGWALDUMP:-$(command -v pg_waldump || ls /usr/lib/postgresql/*/bin/pg_waldump 2>/dev/null | tail -1)}
[ -x "$PGWALDUMP" ] && [ -r "$PGWAL" ] || { echo "levers.sh: needs pg_waldump and read access to $PGWAL (set PGWALDUMP, PGWAL)" >&2; exit 1; }
# A replication slot keeps the WAL we read from being recycled by a
# checkpoint meanwhile (a busy shared server goes through segments in
# seconds); dropped on exit.
SLOT=outboxd_bench_levers
$P "$PGURL/postgres" -c "SELECT pg_drop_replication_slot('$SLOT') FROM pg_replication_slots WHERE slot_name = '$SLOT'" >/dev/null
$P "$PGURL/postgres" -c "SELECT pg_create_physical_replication_slot('$SLOT', true)" >/dev/null
trap '$P "$PGURL/postgres" -c "SELECT pg_drop_replication_slot('"'"'$SLOT'"'"')" >/dev/null' EXIT
# walbytes START END [images]: the WAL bytes that our benchmark database's
# transactions wrote between two positions, read with pg_waldump, so that
# other work on a shared server is not counted: every record that names a
# relation of the database, and every record of a transaction that did
# (its commit). With full-page images, unless the third argument is
# "noimages" (a checkpoint that another's work triggers mid-run adds an
# image of every page touched next, most of all in an index written at
# random places).
walbytes() {
  local oid
  oid=$($P "$PGURL/outboxd_bench_levers" -c "SELECT oid FROM pg_database WHERE datname = current_database()")
  "$PGWALDUMP" -p "$PGWAL" -s "$1" -e "$2" | awk -v db="/$oid/" -v noimg="$3" '
    { tx = $0; sub(/.*tx: */, "", tx); sub(/,.*/, "", tx)
      len = $0; sub(/.*len \(rec\/tot\): */, "", len); rec = len; sub(/\/.*/, "", rec)
      tot = len; sub(/^[0-9]+\/ */, "", tot); sub(/,.*/, "", tot)
      line[NR] = (noimg == "noimages") ? rec : tot; txof[NR] = tx; mine[NR] = index($0, db) > 0
      if (mine[NR] && tx != 0) ours[tx] = 1 }
    END { for (i = 1; i <= NR; i++) if (mine[i] || (txof[i] in ours)) sum += line[i]; print sum + 0 }'
}
N=${N:-20000}
run1() { # name, setup SQL, delivery SQL (one DO block), SQL after the load
  $P "$PGURL/postgres" -c "DROP DATABASE IF EXISTS outboxd_bench_levers" -c "CREATE DATABASE outboxd_bench_levers" >/dev/null 2>&1
  "$OUTBOXD" migrate up --database-url "$PGURL/outboxd_bench_levers?sslmode=disable" >/dev/null 2>&1
  $P "$PGURL/outboxd_bench_levers" -c "$2" >/dev/null
  # Checkpoint before the load, not after: the deliveries then touch pages
  # already written since the checkpoint and carry no full-page images,
  # which depend on the checkpoint interval rather than on the design.
  $P "$PGURL/outboxd_bench_levers" -c "CHECKPOINT" >/dev/null
  $P "$PGURL/outboxd_bench_levers" -c "
INSERT INTO outboxd.outbox_keys SELECT 'k' || i, 1 FROM generate_series(0, $N - 1) i;
INSERT INTO outboxd.outbox_messages (id, destination, type, ordering_key, seq, payload, idempotency_key, created_at)
SELECT gen_random_uuid(), 'sink', 'deal.won', 'k' || i, 1, convert_to(rpad('{\"n\":' || i || '}', 300), 'UTF8'), 'i' || i, now() - interval '1 minute'
FROM generate_series(0, $N - 1) i;" >/dev/null
  [ -n "$4" ] && $P "$PGURL/outboxd_bench_levers" -c "$4" >/dev/null
  local s=$($P "$PGURL/outboxd_bench_levers" -c "SELECT pg_current_wal_lsn()")
  local t0=$($P "$PGURL/outboxd_bench_levers" -c "SELECT coalesce(sum(n_tup_upd),0) || ' ' || coalesce(sum(n_tup_hot_upd),0) || ' ' || coalesce(sum(n_tup_ins),0) FROM pg_stat_user_tables WHERE schemaname='outboxd' AND relname IN ('outbox_messages','outbox_attempts','outbox_pending')")
  $P "$PGURL/outboxd_bench_levers" -c "$3" >/dev/null
  sleep 1
  local end=$($P "$PGURL/outboxd_bench_levers" -c "SELECT pg_current_wal_lsn()")
  local e=$(walbytes "$s" "$end") r=$(walbytes "$s" "$end" noimages)
  local t1=$($P "$PGURL/outboxd_bench_levers" -c "SELECT coalesce(sum(n_tup_upd),0) || ' ' || coalesce(sum(n_tup_hot_upd),0) || ' ' || coalesce(sum(n_tup_ins),0) FROM pg_stat_user_tables WHERE schemaname='outboxd' AND relname IN ('outbox_messages','outbox_attempts','outbox_pending')")
  read u0 h0 i0 <<<"$t0"; read u1 h1 i1 <<<"$t1"
  echo "$(( e / N )) $(( r / N )) $((u1-u0)) $((h1-h0)) $((i1-i0))"
}
run() {
  local w wr u h i
  read -r w wr u h i <<<"$(run1 "$@")"
  echo "$1 | WAL/msg $w B, without full-page images $wr B | updates $u HOT $h | inserts $i"
}
# Each delivery: 100 transactions of 200, as the dispatcher records batches.
BATCHES=$((N / 200))
TODAY="DO \$\$ BEGIN FOR b IN 1..$BATCHES LOOP
WITH upd AS (UPDATE outboxd.outbox_messages m SET status = 'delivered', attempts = m.attempts + 1, next_attempt_at = now(),
  last_error = '', last_status_code = 200, delivered_at = now()
  WHERE m.id IN (SELECT id FROM outboxd.outbox_messages WHERE status = 'pending' ORDER BY ordering_key LIMIT 200) RETURNING m.id, m.attempts)
INSERT INTO outboxd.outbox_attempts (message_id, attempt, attempted_at, duration_ms, outcome, status_code, error, response_body, dispatcher)
SELECT id, attempts, now(), 1.5, 'delivered', 200, '', '', 'dispatcher-1' FROM upd;
COMMIT; END LOOP; END \$\$"
# Migration 13 (what the dispatcher does now): the first-try success's
# facts on the message row, no attempt row.
NOATTEMPT="DO \$\$ BEGIN FOR b IN 1..$BATCHES LOOP
UPDATE outboxd.outbox_messages m SET status = 'delivered', attempts = m.attempts + 1, next_attempt_at = now(),
  last_error = '', last_status_code = 200, delivered_at = now(),
  first_attempt_at = now(), first_attempt_ms = 1.5, first_attempt_body = NULL, first_attempt_by = 'dispatcher-1'
  WHERE m.id IN (SELECT id FROM outboxd.outbox_messages WHERE status = 'pending' ORDER BY ordering_key LIMIT 200);
COMMIT; END LOOP; END \$\$"
# Only the status column changes and nothing indexes it, nor
# next_attempt_at/delivered_at: the pending indexes are replaced by a
# queue table the delivery deletes from.
SPLIT_SETUP="DROP INDEX outboxd.outbox_messages_lane_keyed_idx, outboxd.outbox_messages_lane_unkeyed_idx, outboxd.outbox_messages_dead_idx, outboxd.outbox_messages_delivered_idx;
ALTER TABLE outboxd.outbox_messages SET (fillfactor = 85);
CREATE TABLE outboxd.outbox_pending (id uuid PRIMARY KEY, destination text, lane smallint, ordering_key text, seq bigint, next_attempt_at timestamptz);
CREATE INDEX ON outboxd.outbox_pending (destination, lane, ordering_key, seq);"
SPLIT_FILL="INSERT INTO outboxd.outbox_pending SELECT id, destination, lane, ordering_key, seq, next_attempt_at FROM outboxd.outbox_messages"
SPLIT="DO \$\$ BEGIN FOR b IN 1..$BATCHES LOOP
WITH d AS (DELETE FROM outboxd.outbox_pending WHERE id IN (SELECT id FROM outboxd.outbox_pending ORDER BY destination, lane, ordering_key, seq LIMIT 200) RETURNING id)
UPDATE outboxd.outbox_messages m SET status = 'delivered', attempts = m.attempts + 1,
  last_error = '', last_status_code = 200, delivered_at = now() FROM d WHERE m.id = d.id;
COMMIT; END LOOP; END \$\$"
SPLIT_ATT="DO \$\$ BEGIN FOR b IN 1..$BATCHES LOOP
WITH d AS (DELETE FROM outboxd.outbox_pending WHERE id IN (SELECT id FROM outboxd.outbox_pending ORDER BY destination, lane, ordering_key, seq LIMIT 200) RETURNING id),
upd AS (UPDATE outboxd.outbox_messages m SET status = 'delivered', attempts = m.attempts + 1,
  last_error = '', last_status_code = 200, delivered_at = now() FROM d WHERE m.id = d.id RETURNING m.id, m.attempts)
INSERT INTO outboxd.outbox_attempts (message_id, attempt, attempted_at, duration_ms, outcome, status_code, error, response_body, dispatcher)
SELECT id, attempts, now(), 1.5, 'delivered', 200, '', '', 'dispatcher-1' FROM upd;
COMMIT; END LOOP; END \$\$"
FF="ALTER TABLE outboxd.outbox_messages SET (fillfactor = 85);"
run "before migration 13: UPDATE (non-HOT) + attempt row" "SELECT 1" "$TODAY"
run "now (migration 13): a first-try success on the message row, no attempt row" "SELECT 1" "$NOATTEMPT"
run "before migration 13, fillfactor 85 (no change to indexes)" "$FF" "$TODAY"
run "queue table + HOT update, no attempt row" "$SPLIT_SETUP" "$SPLIT" "$SPLIT_FILL"
run "queue table + HOT update + attempt row" "$SPLIT_SETUP" "$SPLIT_ATT" "$SPLIT_FILL"

# The enqueue side. uuidv7() makes ids as Enqueue does (time-ordered: new
# entries go to the right edge of the primary key and, for a key made from
# the id, of the idempotency index; PostgreSQL 15 has no such function).
UUIDV7="CREATE FUNCTION uuidv7() RETURNS uuid LANGUAGE sql VOLATILE AS \$\$
SELECT encode(set_byte(set_byte(overlay(uuid_send(gen_random_uuid())
  PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
  6, (get_byte(uuid_send(gen_random_uuid()), 6) & 15) | 112), 8, (get_byte(uuid_send(gen_random_uuid()), 8) & 63) | 128), 'hex')::uuid \$\$;"
# The statement Enqueue runs for an unkeyed message (enqueueSQL without an
# ordering key): $1 is the idempotency key's expression, $2 the conflict
# clause.
enqsql() {
  cat <<SQL
BEGIN;
WITH i AS (SELECT uuidv7() AS id)
INSERT INTO outboxd.outbox_messages (id, destination, type, ordering_key, seq, payload, headers,
    idempotency_key, caused_by_source, caused_by_event_id, step)
SELECT id, 'email-api', 'email.welcome', NULL, NULL,
       convert_to('{"to":"ada@example.com","template":"welcome"}', 'UTF8'), '{}', $1, $3, $4, '' FROM i
$2;
COMMIT;
SQL
}
# enqueue: name, setup SQL, idempotency key, conflict clause, cause source, cause event id
enq1() {
  $P "$PGURL/postgres" -c "DROP DATABASE IF EXISTS outboxd_bench_levers" -c "CREATE DATABASE outboxd_bench_levers" >/dev/null 2>&1
  "$OUTBOXD" migrate up --database-url "$PGURL/outboxd_bench_levers?sslmode=disable" >/dev/null 2>&1
  $P "$PGURL/outboxd_bench_levers" -c "$UUIDV7" -c "$2" >/dev/null
  local script
  script=$(mktemp)
  enqsql "$3" "$4" "$5" "$6" >"$script"
  # A first pass fills the first pages after the checkpoint (full-page
  # images); the second is measured.
  $P "$PGURL/outboxd_bench_levers" -c "CHECKPOINT" >/dev/null
  pgbench -n -c 1 -t 2000 -f "$script" "$PGURL/outboxd_bench_levers" >/dev/null 2>&1
  local s e
  s=$($P "$PGURL/outboxd_bench_levers" -c "SELECT pg_current_wal_lsn()")
  pgbench -n -c 1 -t 5000 -f "$script" "$PGURL/outboxd_bench_levers" >/dev/null 2>&1
  local end
  end=$($P "$PGURL/outboxd_bench_levers" -c "SELECT pg_current_wal_lsn()")
  e=$(walbytes "$s" "$end")
  r=$(walbytes "$s" "$end" noimages)
  rm -f "$script"
  echo "$(( e / 5000 )) B, without full-page images $(( r / 5000 ))"
}
enq() { echo "enqueue, $1 | WAL/msg $(enq1 "$@") B"; }
OLDIDX="CREATE INDEX outbox_messages_pending_created_idx ON outboxd.outbox_messages (created_at) WHERE status = 'pending';"
# The unique index of every key, which migration 15 replaced by one of the
# keys that are not their message's id.
FULLIDX="CREATE UNIQUE INDEX outbox_messages_idempotency_key_idx ON outboxd.outbox_messages (destination, idempotency_key);"
CONFLICT="ON CONFLICT (destination, idempotency_key) DO NOTHING"
# Since migration 15 (outbox/sql.go): no conflict target (the primary key or
# the given-key index), after a probe of both (not measured here).
CONFLICT15="ON CONFLICT DO NOTHING"
# A key derived from an inbox event (UUIDv5: no order, like a random one).
DERIVED="md5(random()::text)::uuid::text"
enq "before migration 12, no cause: key check (4 index entries)" "$OLDIDX $FULLIDX" "id::text" "$CONFLICT" NULL NULL
enq "before migration 12, caused by an inbox event (5)" "$OLDIDX $FULLIDX" "$DERIVED" "$CONFLICT" "'stripe'" "'evt_' || id"
enq "before migration 15, no cause: id and key made by Enqueue, no key check (3)" "$FULLIDX" "id::text" "" NULL NULL
enq "no cause: id and key made by Enqueue, no key check (2)" "SELECT 1" "id::text" "" NULL NULL
enq "the caller's id: key check (2)" "SELECT 1" "id::text" "$CONFLICT15" NULL NULL
enq "caused by an inbox event: derived key, key check, cause index (4)" "SELECT 1" "$DERIVED" "$CONFLICT15" "'stripe'" "'evt_' || id"
