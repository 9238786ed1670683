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
# client, the INSERT of an unkeyed message as Enqueue stores it; no trigger
# fires on insert since migration 10) with today's indexes and without
# pending_created_idx.
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
# walbytes START END: the WAL bytes (records with their full-page images)
# that our benchmark database's transactions wrote between two positions,
# read with pg_waldump, so that other work on a shared server is not
# counted: every record that names a relation of the database, and every
# record of a transaction that did (its commit).
walbytes() {
  local oid
  oid=$($P "$PGURL/outboxd_bench_levers" -c "SELECT oid FROM pg_database WHERE datname = current_database()")
  "$PGWALDUMP" -p "$PGWAL" -s "$1" -e "$2" | awk -v db="/$oid/" '
    { tx = $0; sub(/.*tx: */, "", tx); sub(/,.*/, "", tx)
      tot = $0; sub(/.*len \(rec\/tot\): *[0-9]+\/ */, "", tot); sub(/,.*/, "", tot)
      line[NR] = tot; txof[NR] = tx; mine[NR] = index($0, db) > 0
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
  local e=$(walbytes "$s" "$end")
  local t1=$($P "$PGURL/outboxd_bench_levers" -c "SELECT coalesce(sum(n_tup_upd),0) || ' ' || coalesce(sum(n_tup_hot_upd),0) || ' ' || coalesce(sum(n_tup_ins),0) FROM pg_stat_user_tables WHERE schemaname='outboxd' AND relname IN ('outbox_messages','outbox_attempts','outbox_pending')")
  read u0 h0 i0 <<<"$t0"; read u1 h1 i1 <<<"$t1"
  echo "$(( e / N )) $((u1-u0)) $((h1-h0)) $((i1-i0))"
}
run() {
  local w u h i
  read -r w u h i <<<"$(run1 "$@")"
  echo "$1 | WAL/msg $w B | updates $u HOT $h | inserts $i"
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
NOATTEMPT="DO \$\$ BEGIN FOR b IN 1..$BATCHES LOOP
UPDATE outboxd.outbox_messages m SET status = 'delivered', attempts = m.attempts + 1, next_attempt_at = now(),
  last_error = '', last_status_code = 200, delivered_at = now()
  WHERE m.id IN (SELECT id FROM outboxd.outbox_messages WHERE status = 'pending' ORDER BY ordering_key LIMIT 200);
COMMIT; END LOOP; END \$\$"
# Only the status column changes and nothing indexes it, nor
# next_attempt_at/delivered_at: the pending indexes are replaced by a
# queue table the delivery deletes from.
SPLIT_SETUP="DROP INDEX outboxd.outbox_messages_lane_keyed_idx, outboxd.outbox_messages_lane_unkeyed_idx, outboxd.outbox_messages_pending_created_idx, outboxd.outbox_messages_dead_idx, outboxd.outbox_messages_delivered_idx;
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
run "today: UPDATE (non-HOT) + attempt row" "SELECT 1" "$TODAY"
run "no attempt row for a first-try success" "SELECT 1" "$NOATTEMPT"
run "today, fillfactor 85 (no change to indexes)" "$FF" "$TODAY"
run "queue table + HOT update, no attempt row" "$SPLIT_SETUP" "$SPLIT" "$SPLIT_FILL"
run "queue table + HOT update + attempt row" "$SPLIT_SETUP" "$SPLIT_ATT" "$SPLIT_FILL"

# enqueue: name, setup SQL
enq1() {
  $P "$PGURL/postgres" -c "DROP DATABASE IF EXISTS outboxd_bench_levers" -c "CREATE DATABASE outboxd_bench_levers" >/dev/null 2>&1
  "$OUTBOXD" migrate up --database-url "$PGURL/outboxd_bench_levers?sslmode=disable" >/dev/null 2>&1
  $P "$PGURL/outboxd_bench_levers" -c "$2" >/dev/null
  local script
  script=$(mktemp)
  cat >"$script" <<'SQL'
BEGIN;
INSERT INTO outboxd.outbox_messages (id, destination, type, payload, headers, idempotency_key, step)
VALUES (gen_random_uuid(), 'email-api', 'email.welcome',
        convert_to('{"to":"ada@example.com","template":"welcome"}', 'UTF8'), '{}', gen_random_uuid()::text, '');
COMMIT;
SQL
  # A first pass fills the first pages after the checkpoint (full-page
  # images); the second is measured.
  $P "$PGURL/outboxd_bench_levers" -c "CHECKPOINT" >/dev/null
  pgbench -n -c 1 -t 2000 -f "$script" "$PGURL/outboxd_bench_levers" >/dev/null 2>&1
  local s e
  s=$($P "$PGURL/outboxd_bench_levers" -c "SELECT pg_current_wal_lsn()")
  pgbench -n -c 1 -t 5000 -f "$script" "$PGURL/outboxd_bench_levers" >/dev/null 2>&1
  e=$(walbytes "$s" "$($P "$PGURL/outboxd_bench_levers" -c "SELECT pg_current_wal_lsn()")")
  rm -f "$script"
  echo $(( e / 5000 ))
}
enq() { echo "enqueue, $1 | WAL/msg $(enq1 "$@") B"; }
enq "today (4 index entries unkeyed)" "SELECT 1"
enq "without pending_created_idx (3)" "DROP INDEX outboxd.outbox_messages_pending_created_idx"
