package inbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// FailureKind is how a receipt failed. Its values are the strings stored in
// the failure log, counted in outboxd_webhooks_total and shown by the
// console and the CLI.
type FailureKind string

const (
	// FailureRejected means the event was refused for good (a malformed
	// payload or a Permanent error); the sender got 422.
	FailureRejected FailureKind = "rejected"
	// FailureFailed means the receipt failed transiently (the handler's
	// error, the database); the sender got 503 and retries.
	FailureFailed FailureKind = "failed"
	// FailurePanic means the handler panicked; the sender got 500 (an
	// async source's job is retried, as after an error).
	FailurePanic FailureKind = "panic"
)

// Failure is a verified event whose receipt failed or was rejected, with how
// often: one row per source, event and kind.
type Failure struct {
	Source  string      // the event's source
	EventID string      // the event's id
	Kind    FailureKind // how it failed
	// Reason is the last error's text (the first one kept when a retry of
	// a rejected event brought none).
	Reason string
	// StatusCode is the last answer's HTTP status; 0 for async jobs, which
	// answer nobody.
	StatusCode      int
	FirstAt, LastAt time.Time // the first and latest failure
	Count           int       // how many failures
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
