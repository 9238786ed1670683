package migrations

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"
)

// riverSteps maps goose versions to the River migration version each brings
// the schema to. River's own migrations must not all run in one
// transaction: its version 004 adds an enum value that version 006 uses,
// and PostgreSQL refuses a new enum value in the transaction that added it.
// Each goose migration runs in its own transaction, so the River versions
// are split at that boundary. A River upgrade adds a new step here.
var riverSteps = []struct {
	gooseVersion int64
	riverVersion int
}{
	{gooseVersion: 2, riverVersion: 5},
	{gooseVersion: 3, riverVersion: RiverVersion},
}

// RiverMigrations returns the goose Go migrations that apply River's own
// migrations, up to RiverVersion, in schema. They are goose's own type
// because they are for users who run goose themselves.
func RiverMigrations(schema string) []*goose.Migration {
	out := make([]*goose.Migration, 0, len(riverSteps))
	for i, step := range riverSteps {
		// Going down, a step returns River to the previous step's
		// version; -1 removes everything, River's version table included.
		downTo := -1
		if i > 0 {
			downTo = riverSteps[i-1].riverVersion
		}
		up, down := step.riverVersion, downTo
		out = append(out, goose.NewGoMigration(step.gooseVersion,
			&goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
				return migrateRiver(ctx, tx, schema, rivermigrate.DirectionUp, up)
			}},
			&goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
				return migrateRiver(ctx, tx, schema, rivermigrate.DirectionDown, down)
			}},
		))
	}
	return out
}

func migrateRiver(ctx context.Context, tx *sql.Tx, schema string, dir rivermigrate.Direction, target int) error {
	m, err := rivermigrate.New(riverdatabasesql.New(nil), &rivermigrate.Config{Schema: schema})
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	// MigrateTx is deprecated because some River versions cannot share one
	// transaction; riverSteps splits them at that boundary, and running
	// inside goose's transaction keeps each step atomic with its version row.
	if _, err := m.MigrateTx(ctx, tx, dir, &rivermigrate.MigrateOpts{TargetVersion: target}); err != nil { //nolint:staticcheck // see above
		return fmt.Errorf("river migrations %s to %d: %w", dir, target, err)
	}
	return nil
}
