package migrations

import (
	"errors"
	"fmt"
	"time"

	"github.com/pressly/goose/v3"
)

// Direction says which way a migration ran.
type Direction string

const (
	// DirectionUp means the migration was applied.
	DirectionUp Direction = "up"
	// DirectionDown means the migration was reverted.
	DirectionDown Direction = "down"
)

// Result describes one applied or reverted migration. A failure is the
// error returned beside the results, not a field.
type Result struct {
	// Version is the migration's version (its file's number).
	Version int64
	// Name is the SQL file's name ("00001_outboxd_core.sql"), or for a Go
	// migration what it does (GoMigrationName).
	Name      string
	Direction Direction     // up or down
	Duration  time.Duration // how long it ran
}

// Status describes one migration and whether it is applied.
type Status struct {
	// Version and Name are as in Result.
	Version int64
	Name    string // as in Result
	Applied bool   // whether it is applied
	// AppliedAt is when it was applied; zero when it is not.
	AppliedAt time.Time
}

// sourceName is a migration's Name: its file, or what a Go migration does.
func sourceName(s *goose.Source) string {
	if s == nil {
		return ""
	}
	if s.Path != "" {
		return s.Path
	}
	return GoMigrationName(s.Version)
}

func resultOf(r *goose.MigrationResult) *Result {
	if r == nil {
		return nil
	}
	out := &Result{Name: sourceName(r.Source), Direction: Direction(r.Direction), Duration: r.Duration}
	if r.Source != nil {
		out.Version = r.Source.Version
	}
	return out
}

func resultsOf(rs []*goose.MigrationResult) []*Result {
	if rs == nil {
		return nil
	}
	out := make([]*Result, len(rs))
	for i, r := range rs {
		out[i] = resultOf(r)
	}
	return out
}

func statusOf(s *goose.MigrationStatus) *Status {
	out := &Status{Name: sourceName(s.Source), Applied: s.State == goose.StateApplied, AppliedAt: s.AppliedAt}
	if s.Source != nil {
		out.Version = s.Source.Version
	}
	return out
}

// failed makes goose's error of a run ours. On a failed migration goose
// returns no results but a *goose.PartialError holding the migrations
// applied (or reverted) before it: those come back as Results, and the
// error names the version that failed, wrapping goose's.
func failed(op string, res []*goose.MigrationResult, err error) ([]*Result, error) {
	var pe *goose.PartialError
	if !errors.As(err, &pe) || pe.Failed == nil {
		return resultsOf(res), fmt.Errorf("migrations: %s: %w", op, err)
	}
	f := resultOf(pe.Failed)
	return resultsOf(pe.Applied), fmt.Errorf("migrations: %s: migration %d (%s) failed (%d before it succeeded): %w",
		op, f.Version, f.Name, len(pe.Applied), err)
}
