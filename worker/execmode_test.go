package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/pgtest"
)

// A dispatcher on a pool in the simple protocol or exec mode (PgBouncer's
// usual settings), where pgx must type every argument itself, claims,
// delivers and records as in the default mode.
func TestDispatcherInExecAndSimpleProtocolModes(t *testing.T) {
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			b := setup(t)
			cfg, err := pgxpool.ParseConfig(pgtest.URL(t) + "&pool_max_conns=10")
			if err != nil {
				t.Fatal(err)
			}
			cfg.ConnConfig.DefaultQueryExecMode = mode
			if b.pool, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.pool.Close)
			b.enqueue(t, 40, 10, func(i int) string {
				if i%2 == 0 {
					return ""
				}
				return fmt.Sprintf("k%d", i%3)
			})
			b.start(t, b.config(t, nil))
			if c := b.waitSettled(t, 20*time.Second); c["delivered"] != 40 {
				t.Fatalf("statuses %v, want 40 delivered", c)
			}
			b.checkKeys(t)
		})
	}
}
