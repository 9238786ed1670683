package migrations_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/migrations"
)

type pingArgs struct{ N int }

func (pingArgs) Kind() string { return "outboxd_ping" }

// River's own client, at the pinned version and pointed at our schema, can
// use what the migrations created: its schema check passes and a job
// inserted in a transaction lands in outboxd.river_job.
func TestRiverClientUsesMigratedSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.EmptyURL(t)
	if err := migrations.Up(ctx, pgtest.SQLDB(t, url), "ob_river"); err != nil {
		t.Fatal(err)
	}
	pool := pgtest.Connect(t, url)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: "ob_river"})
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := client.InsertTx(ctx, tx, pingArgs{N: 1}, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ob_river.river_job WHERE kind = 'outboxd_ping'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
}
