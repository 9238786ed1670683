package migrations

import (
	"context"
	"errors"
	"log/slog"
	"path"
	"strings"

	"github.com/pressly/goose/v3"
)

// deadlockTries bounds the runs of migrations that PostgreSQL keeps
// choosing as a deadlock's victim: 5 runs, 4 of them again.
const deadlockTries = 5

// deadlockVictim returns the failure of a SQL migration that PostgreSQL
// aborted to break a deadlock. Such a migration ran in one transaction,
// rolled back whole, so running it again is safe. Its DDL takes locks in
// another order than the statements of sessions using the tables (a
// running dispatcher's claims): a trial's `migrate down --to 5` beside a
// dispatcher failed so, and worked when run again.
func deadlockVictim(err error) (*goose.PartialError, bool) {
	var pe *goose.PartialError
	if !errors.As(err, &pe) || pe.Failed == nil || pe.Failed.Source == nil || !inOneTransaction(pe.Failed.Source) {
		return nil, false
	}
	return pe, isSQLState(pe.Err, "40P01")
}

// inOneTransaction tells whether goose ran src in one transaction: a SQL
// file without the NO TRANSACTION annotation (none has it today). The Go
// migrations are left out: most run outside one (River's two, 2 and 3,
// run in one, but a deadlock there was never seen).
func inOneTransaction(src *goose.Source) bool {
	if src.Type != goose.TypeSQL {
		return false
	}
	body, err := FS.ReadFile(path.Base(src.Path))
	return err == nil && !strings.Contains(string(body), "+goose NO TRANSACTION")
}

// againAfterDeadlocks runs run, and again while its SQL migration is a
// deadlock's victim (at most deadlockTries times), returning what every
// run applied.
func againAfterDeadlocks(ctx context.Context, log *slog.Logger, op string, run func() ([]*goose.MigrationResult, error)) ([]*goose.MigrationResult, error) {
	var done []*goose.MigrationResult
	for tries := 1; ; tries++ {
		res, err := run()
		pe, victim := deadlockVictim(err)
		if victim && tries < deadlockTries && ctx.Err() == nil {
			done = append(done, pe.Applied...)
			log.Warn("a migration was aborted to break a deadlock with another session using the tables (a running dispatcher's, say); nothing of it stayed, running it again",
				"op", op, "version", pe.Failed.Source.Version, "try", tries, "of", deadlockTries)
			continue
		}
		if err != nil {
			if pe != nil || errors.As(err, &pe) {
				pe.Applied = append(done, pe.Applied...)
			}
			return append(done, res...), err
		}
		return append(done, res...), nil
	}
}
