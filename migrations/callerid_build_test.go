package migrations_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/outbox"
)

// Migration 16's real concurrent build, with producers storing racing
// pairs all through it: a message given an id in one transaction and, in
// another that overlaps it, a message given that id's text as its key.
// Each pair's producers are new (they look for the column afresh), so
// pairs begun after the ALTER run while the index builds and validates.
// The build ends valid (a caller's id marked before the index was valid
// would be stored beside its key's twin, a duplicate that fails the build
// and every run after it), and once the migration is done every pair is
// stored once. The other tests of marking set pg_index flags by hand; this
// one is the server's own build.
func TestCallerIDBuildBesideRacingPairs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, db, m := upTo(t, 15)
	// Each producer holds up to three connections (both transactions and
	// the look at the second's session).
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// Enough rows that the build takes a while beside the pairs.
	if _, err := db.Exec(`INSERT INTO outboxd.outbox_messages (id, destination, payload, idempotency_key)
		SELECT gen_random_uuid(), 'fill', '\x00', 'f-' || i FROM generate_series(1, 200000) i`); err != nil {
		t.Fatal(err)
	}

	var (
		migrated      atomic.Bool
		whileBuilding atomic.Int64 // pairs begun while the index was there and not valid
		stop          atomic.Bool
		wg            sync.WaitGroup
		errs          = make(chan error, 4)
		mu            sync.Mutex
		during        []string // keys of pairs begun before the migration ended
		after         []string
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				before := !migrated.Load()
				var building bool
				if err := pool.QueryRow(ctx, `SELECT coalesce((SELECT NOT indisvalid FROM pg_index
					WHERE indexrelid = to_regclass('outboxd.outbox_messages_caller_key_idx')), false)`).Scan(&building); err != nil {
					errs <- err
					return
				}
				if building {
					whileBuilding.Add(1)
				}
				key, err := racePair(ctx, pool)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if before {
					during = append(during, key)
				} else {
					after = append(after, key)
				}
				enough := len(after) >= 40
				mu.Unlock()
				if enough {
					return
				}
			}
		}()
	}
	_, upErr := m.Up(ctx)
	migrated.Store(true)
	if upErr != nil {
		stop.Store(true)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if upErr != nil {
		t.Fatalf("the build beside racing pairs failed: %v", upErr)
	}
	if !indexValid(t, db, "outboxd.outbox_messages_caller_key_idx") {
		t.Fatal("migration 16's index is not valid")
	}
	if whileBuilding.Load() == 0 {
		t.Fatalf("no pair began while the index built (%d beside the migration)", len(during))
	}
	stored := func(key string) int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM outboxd.outbox_messages WHERE destination = 'crm' AND idempotency_key = $1`, key).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, key := range after {
		if n := stored(key); n != 1 {
			t.Fatalf("a pair begun after the migration stored %d messages for one key", n)
		}
	}
	t.Logf("%d pairs beside the migration (%d while the index built), %d after it", len(during), whileBuilding.Load(), len(after))
}

// racePair stores a message given a new id X from one new producer and,
// from another, in a transaction that overlaps the first, one given X's
// text as its key. It returns the key.
func racePair(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	a, err := outbox.New(nil)
	if err != nil {
		return "", err
	}
	b, err := outbox.New(nil)
	if err != nil {
		return "", err
	}
	id := uuid.Must(uuid.NewV7())
	txA, err := pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = txA.Rollback(ctx) }()
	if _, err := a.Enqueue(ctx, txA, outbox.Message{Destination: "crm", ID: id, Payload: []byte(`{}`)}); err != nil {
		return "", err
	}
	second := make(chan error, 1)
	pid := make(chan uint32, 1)
	go func() {
		second <- pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			pid <- tx.Conn().PgConn().PID()
			_, err := b.Enqueue(ctx, tx, outbox.Message{Destination: "crm", IdempotencyKey: id.String(), Payload: []byte(`{}`)})
			return err
		})
	}()
	// The first commits only once the second's insert has begun (it runs,
	// or waits for the first in the index) or the second is done: their
	// statements overlap.
	done, err := awaitInsertBegun(ctx, pool, <-pid, second)
	if err != nil {
		return "", err
	}
	if err := txA.Commit(ctx); err != nil {
		return "", err
	}
	if !done {
		err = <-second
	}
	return id.String(), err
}

// awaitInsertBegun returns once the session pid's latest statement is an
// insert into the outbox, or its transaction has ended (done, with the
// transaction's error as err).
func awaitInsertBegun(ctx context.Context, pool *pgxpool.Pool, pid uint32, second <-chan error) (done bool, err error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-second:
			return true, err
		default:
		}
		var begun bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE pid = $1 AND query LIKE '%INSERT INTO outboxd.outbox_messages%')`, int32(pid)).Scan(&begun); err != nil {
			return false, err
		}
		if begun {
			return false, nil
		}
		if time.Now().After(deadline) {
			var state, query string
			_ = pool.QueryRow(ctx, `SELECT state, query FROM pg_stat_activity WHERE pid = $1`, int32(pid)).Scan(&state, &query)
			return false, fmt.Errorf("the second insert never began: %s %q", state, query)
		}
		time.Sleep(100 * time.Microsecond)
	}
}
