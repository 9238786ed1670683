package worker

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outboxd/outboxd/internal/dbschema"
	"github.com/outboxd/outboxd/internal/pgtest"
)

// BenchmarkRecordServerCPU measures what claiming a batch and recording it
// delivered costs the PostgreSQL server per message, on a database of its
// own: the backend's CPU (read from /proc: the server must run on this
// machine), WAL bytes (server-wide) and the share of HOT updates. Each
// iteration claims one lane's batch of 200 unkeyed messages (300-byte
// payloads, UUIDv7-like ids) and records it, lane after lane, as a drain
// does; no HTTP, one connection. Designs:
//
//   - dispatcher: claimSQL and recordSQL, as the dispatcher runs them;
//
//   - plain-update: claimSQL, then a bare UPDATE of status, delivered_at
//     and attempts (what the recording statement itself adds);
//
//   - claim-only: claimSQL alone (each lane's same first batch again and
//     again): the claim's share;
//
//   - queue-table: the pending rows in a table of their own (primary key,
//     lane index), the message table without its lane, retry-heads, dead
//     and delivered indexes and its notify trigger, with fillfactor 85: the claim reads
//     the queue, the record deletes the queue rows and updates the messages
//     (HOT), neither checks the lease. A best case for docs/design.md's
//     queue table, not a schema outboxd has: the delivered purge needs
//     another way to find old deliveries, the dead letters another index;
//
//   - poller: the hand-written relay of bench-dispatch (its own table, a
//     partial index on unsent rows, SELECT ... FOR UPDATE SKIP LOCKED and
//     UPDATE in one transaction), with batches of 200 too;
//
//   - dispatcher-with-full-key-index, plain-update-with-full-key-index:
//     the two above with the unique index of every idempotency key that
//     migration 15 replaced by one of given keys only (these messages are
//     keyed by their ids): what it saved, in the same run;
//
//   - plain-update-without-*: plain-update on a message table with one
//     part of today's schema taken away (the delivered index, the notify
//     trigger, the lane's generation expression, the two CHECKs, the
//     attempts' foreign key), and with all five gone (an entry in the
//     primary key only): what each part costs the update, for the schema
//     work of docs/design.md.
//
//     go test -run '^$' -bench RecordServerCPU -benchtime 200x ./worker/
func BenchmarkRecordServerCPU(b *testing.B) {
	designs := []recordDesign{dispatcherDesign, plainUpdateDesign, claimOnlyDesign, queueTableDesign, pollerDesign}
	for _, d := range slices.Concat(designs, fullKeyIndexDesigns(), updateWithoutDesigns()) {
		b.Run(d.name, func(b *testing.B) {
			ctx := context.Background()
			pool := pgtest.Connect(b, pgtest.URL(b))
			const batch = 200
			// The checkpoint comes first, so that the batches do not pay the
			// full-page images of a page's first change after one (the load
			// has paid them).
			for _, q := range append([]string{"CHECKPOINT", loadMessagesSQL}, d.setup...) {
				var args []any
				if strings.Contains(q, "$1") {
					args = append(args, b.N*batch)
				}
				if _, err := pool.Exec(ctx, q, args...); err != nil {
					b.Fatal(err)
				}
			}
			conn, err := pool.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Release()
			pid := conn.Conn().PgConn().PID()
			var wal0 float64
			if err := conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8`).Scan(&wal0); err != nil {
				b.Fatal(err)
			}
			cpu0 := backendCPU(b, pid)
			b.ResetTimer()
			msgs := 0
			for i := range b.N {
				n, err := d.batch(ctx, conn.Conn(), i%numLanes, batch)
				if err != nil {
					b.Fatal(err)
				}
				msgs += n
			}
			b.StopTimer()
			cpu := backendCPU(b, pid) - cpu0
			var wal, hot float64
			err = conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 - $1, pg_stat_force_next_flush()::text`, wal0).Scan(&wal, new(string))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
				b.Fatal(err)
			}
			err = conn.QueryRow(ctx, `SELECT coalesce(100 * sum(n_tup_hot_upd)::float8 / nullif(sum(n_tup_upd), 0), 0)
				FROM pg_stat_user_tables WHERE relname IN ('outbox_messages', 'relay_outbox')`).Scan(&hot)
			if err != nil {
				b.Fatal(err)
			}
			m := float64(max(msgs, 1))
			b.ReportMetric(cpu*1e6/m, "server-µs/msg")
			b.ReportMetric(wal/m, "WAL-B/msg")
			b.ReportMetric(hot, "HOT-%")
			b.ReportMetric(m, "msgs")
		})
	}
}

// recordDesign is one way to claim and record: setup runs once on the
// loaded database ($1: how many messages were loaded), batch claims and
// records one lane's batch and returns how many messages it recorded.
type recordDesign struct {
	name  string
	setup []string
	batch func(ctx context.Context, conn *pgx.Conn, lane, size int) (int, error)
}

// loadMessagesSQL loads $1 due unkeyed messages of destination "sink", with
// ids that grow as UUIDv7 ids do, and leases every lane to "me".
const loadMessagesSQL = `
WITH m AS (
    INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key, next_attempt_at, created_at)
    SELECT u, 'sink', convert_to(repeat('x', 300), 'UTF8'), u::text, now() - interval '1 min', now() - interval '1 min'
    FROM (SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid AS u
          FROM generate_series(1, $1::int) i) x
)
INSERT INTO outboxd.outbox_lanes (destination, lane, owner, token, lease_until)
SELECT 'sink', l, 'me', 1, now() + interval '1 hour' FROM generate_series(0, 31) l`

var dispatcherDesign = recordDesign{
	name: "dispatcher",
	batch: func(ctx context.Context, conn *pgx.Conn, lane, size int) (int, error) {
		ids, err := claimIDs(ctx, conn, lane, size)
		if err != nil || len(ids) == 0 {
			return 0, err
		}
		n := len(ids)
		delivered, empty := make([]string, n), make([]string, n)
		codes, ago, durations := make([]int32, n), make([]int64, n), make([]float64, n)
		for i := range codes {
			delivered[i], codes[i], ago[i], durations[i] = "delivered", 200, 100, 0.5
		}
		rows, err := conn.Query(ctx, dbschema.Render(recordSQL, "outboxd"), "sink", lane, "me", int64(1),
			ids, delivered, delivered, make([]int64, n), empty, codes, ago, durations, empty, make([]int32, n))
		if err != nil {
			return 0, err
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[pgtype.UUID])
		return len(got), err
	},
}

var plainUpdateDesign = recordDesign{
	name: "plain-update",
	batch: func(ctx context.Context, conn *pgx.Conn, lane, size int) (int, error) {
		ids, err := claimIDs(ctx, conn, lane, size)
		if err != nil || len(ids) == 0 {
			return 0, err
		}
		tag, err := conn.Exec(ctx, `UPDATE outboxd.outbox_messages SET status = 'delivered', delivered_at = now(), attempts = attempts + 1
			WHERE id = ANY ($1)`, ids)
		return int(tag.RowsAffected()), err
	},
}

// claimOnlyDesign claims and records nothing: the claim's share of the
// other designs (each iteration reads its lane's same first batch again).
var claimOnlyDesign = recordDesign{
	name: "claim-only",
	batch: func(ctx context.Context, conn *pgx.Conn, lane, size int) (int, error) {
		ids, err := claimIDs(ctx, conn, lane, size)
		return len(ids), err
	},
}

var queueTableDesign = recordDesign{
	name: "queue-table",
	setup: []string{
		`DROP INDEX outboxd.outbox_messages_lane_unkeyed_idx, outboxd.outbox_messages_lane_keyed_idx,
		   outboxd.outbox_messages_retry_heads_idx, outboxd.outbox_messages_dead_idx, outboxd.outbox_messages_delivered_idx`,
		`DROP TRIGGER outbox_messages_notify ON outboxd.outbox_messages`,
		`ALTER TABLE outboxd.outbox_messages SET (fillfactor = 85)`,
		`VACUUM FULL outboxd.outbox_messages`, // lays the rows out again with fillfactor's free space
		`CREATE TABLE outboxd.bench_queue (id uuid PRIMARY KEY, destination text NOT NULL, lane smallint NOT NULL, next_attempt_at timestamptz NOT NULL)`,
		`CREATE INDEX bench_queue_lane_idx ON outboxd.bench_queue (destination, lane, next_attempt_at)`,
		`INSERT INTO outboxd.bench_queue SELECT id, destination, lane, next_attempt_at FROM outboxd.outbox_messages WHERE $1::int > 0`,
	},
	batch: func(ctx context.Context, conn *pgx.Conn, lane, size int) (int, error) {
		rows, err := conn.Query(ctx, `
SELECT m.id, m.payload, m.headers, m.idempotency_key, m.attempts
FROM (SELECT id, next_attempt_at FROM outboxd.bench_queue
      WHERE destination = 'sink' AND lane = $1 AND next_attempt_at <= now()
      ORDER BY next_attempt_at LIMIT $2) q
JOIN outboxd.outbox_messages m ON m.id = q.id ORDER BY q.next_attempt_at`, lane, size)
		if err != nil {
			return 0, err
		}
		ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgtype.UUID, error) {
			var id pgtype.UUID
			return id, r.Scan(&id, nil, nil, nil, nil)
		})
		if err != nil || len(ids) == 0 {
			return 0, err
		}
		tag, err := conn.Exec(ctx, `
WITH gone AS (DELETE FROM outboxd.bench_queue WHERE id = ANY ($1) RETURNING id)
UPDATE outboxd.outbox_messages m SET status = 'delivered', delivered_at = now(), attempts = attempts + 1,
    first_attempt_at = now(), first_attempt_ms = 0.5, first_attempt_by = 'me', last_status_code = 200
FROM gone WHERE m.id = gone.id`, ids)
		return int(tag.RowsAffected()), err
	},
}

var pollerDesign = recordDesign{
	name: "poller",
	setup: []string{
		`CREATE TABLE relay_outbox (id bigserial PRIMARY KEY, idempotency_key text NOT NULL, payload bytea NOT NULL, sent_at timestamptz)`,
		`CREATE INDEX relay_outbox_unsent ON relay_outbox (id) WHERE sent_at IS NULL`,
		`INSERT INTO relay_outbox (idempotency_key, payload)
		 SELECT gen_random_uuid()::text, convert_to(repeat('x', 300), 'UTF8') FROM generate_series(1, $1::int)`,
	},
	batch: func(ctx context.Context, conn *pgx.Conn, _, size int) (int, error) {
		n := 0
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT id, idempotency_key, payload FROM relay_outbox
				WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, size)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (int64, error) {
				var id int64
				return id, r.Scan(&id, nil, nil)
			})
			if err != nil || len(ids) == 0 {
				return err
			}
			tag, err := tx.Exec(ctx, `UPDATE relay_outbox SET sent_at = now() WHERE id = ANY ($1)`, ids)
			n = int(tag.RowsAffected())
			return err
		})
		return n, err
	},
}

// updateWithoutDesigns are plainUpdateDesign with one part of the schema
// dropped each, then all of them.
func updateWithoutDesigns() []recordDesign {
	parts := []struct{ name, sql string }{
		{"delivered-index", `DROP INDEX outboxd.outbox_messages_delivered_idx`},
		{"trigger", `DROP TRIGGER outbox_messages_notify ON outboxd.outbox_messages`},
		{"generated-lane", `ALTER TABLE outboxd.outbox_messages ALTER COLUMN lane DROP EXPRESSION`},
		{"checks", `ALTER TABLE outboxd.outbox_messages DROP CONSTRAINT outbox_messages_check, DROP CONSTRAINT outbox_messages_status_check`},
		{"foreign-key", `ALTER TABLE outboxd.outbox_attempts DROP CONSTRAINT outbox_attempts_message_id_fkey`},
	}
	var out, all []recordDesign
	var allSQL []string
	for _, p := range parts {
		out = append(out, recordDesign{name: "plain-update-without-" + p.name, setup: []string{p.sql}, batch: plainUpdateDesign.batch})
		allSQL = append(allSQL, p.sql)
	}
	// Without the five, the update of a delivered unkeyed message adds an
	// entry to the primary key only (the partial indexes left hold no
	// delivered unkeyed row; the claim needs the lane indexes).
	all = append(all, recordDesign{name: "plain-update-without-all-five", setup: allSQL, batch: plainUpdateDesign.batch})
	return append(out, all...)
}

// fullKeyIndexDesigns are the dispatcher and the bare UPDATE with the
// unique index of every idempotency key that migration 15 replaced: the
// loaded messages are keyed by their ids, so it holds them and each
// delivery adds an entry to it, as before that migration.
func fullKeyIndexDesigns() []recordDesign {
	full := []string{`CREATE UNIQUE INDEX outbox_messages_idempotency_key_idx ON outboxd.outbox_messages (destination, idempotency_key)`}
	return []recordDesign{
		{name: "dispatcher-with-full-key-index", setup: full, batch: dispatcherDesign.batch},
		{name: "plain-update-with-full-key-index", setup: full, batch: plainUpdateDesign.batch},
	}
}

// claimIDs runs the dispatcher's claim of a lane and returns the ids.
func claimIDs(ctx context.Context, conn *pgx.Conn, lane, size int) ([]pgtype.UUID, error) {
	rows, err := conn.Query(ctx, dbschema.Render(claimSQL, "outboxd"), "sink", lane, "me", int64(1), 10, size, int64(DefaultBatchBytes))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgtype.UUID, error) {
		var id pgtype.UUID
		return id, r.Scan(&id, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil)
	})
}

// backendCPU is the CPU time a server process has used, from /proc. A
// server elsewhere (a container, another host) has its own process ids:
// the one here, if any, is not a postgres process, and the benchmark skips.
func backendCPU(b *testing.B, pid uint32) (seconds float64) {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
		b.Skipf("server process %d is not a postgres process on this machine (%q, %v): this benchmark needs the server here", pid, comm, err)
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Skipf("the server's processes are not readable here (%v): this benchmark needs the server on this machine", err)
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // clock ticks: 100 a second on Linux
}
