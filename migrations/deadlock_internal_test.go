package migrations

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
)

// A migration that keeps being a deadlock's victim runs deadlockTries (5)
// times in all, as README says, and then fails; one outside a transaction
// (a Go migration) or failing otherwise runs once.
func TestDeadlockVictimsRunFiveTimesInAll(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		name string
		src  goose.Source
		code string
		runs int
	}{
		{"SQL, deadlock", goose.Source{Type: goose.TypeSQL, Path: "00006_dispatch_leases.sql", Version: 6}, "40P01", 5},
		{"SQL, another error", goose.Source{Type: goose.TypeSQL, Path: "00006_dispatch_leases.sql", Version: 6}, "42P01", 1},
		{"Go, deadlock", goose.Source{Type: goose.TypeGo, Version: 14}, "40P01", 1},
	} {
		runs := 0
		_, err := againAfterDeadlocks(context.Background(), log, "down", func() ([]*goose.MigrationResult, error) {
			runs++
			return nil, &goose.PartialError{Failed: &goose.MigrationResult{Source: &c.src}, Err: &pgconn.PgError{Code: c.code}}
		})
		if err == nil || runs != c.runs {
			t.Errorf("%s: %d runs (error %v), want %d and the error", c.name, runs, err, c.runs)
		}
	}
}
