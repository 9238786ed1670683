package inbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Failure is a verified event whose receipt failed or was rejected, with how
// often.
type Failure struct {
	Source, EventID, Kind, Reason string
	StatusCode                    int
	FirstAt, LastAt               time.Time
	Count                         int
}

// Failures lists failed and rejected receipts, newest first; source and
// eventID narrow it ("" for all).
func (in *Inbox) Failures(ctx context.Context, db DB, source, eventID string, limit int) ([]Failure, error) {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	rows, err := db.Query(ctx, in.render(failuresSQL), opt(source), opt(storageKey(eventID)), limit)
	if err != nil {
		return nil, fmt.Errorf("inbox: failures: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Failure])
	if err != nil {
		return nil, fmt.Errorf("inbox: failures: %w", err)
	}
	return out, nil
}
