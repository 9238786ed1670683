package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/pendingsql"
	"github.com/outboxd/outboxd/internal/pgid"
	"github.com/outboxd/outboxd/outbox"
)

// Destination is one destination's state.
type Destination struct {
	Name    string `json:"name"`    // the destination's name
	Pending int64  `json:"pending"` // messages waiting
	// PendingCapped: the count stopped at its share of the read's row
	// budget (internal/pendingsql): Pending is then a lower bound.
	PendingCapped bool       `json:"pending_capped"`
	OldestPending *time.Time `json:"oldest_pending,omitempty"` // the oldest waiting message's creation time
	Dead          int64      `json:"dead"`                     // dead letters
	// DeliveredLastHour and FailedLastHour count the attempts of the last
	// hour by outcome.
	DeliveredLastHour int64      `json:"delivered_last_hour"`
	FailedLastHour    int64      `json:"failed_last_hour"`       // every outcome but delivered
	Paused            bool       `json:"paused"`                 // it answered 410, or an operator paused it
	PauseReason       string     `json:"pause_reason,omitempty"` // why it is paused
	PausedAt          *time.Time `json:"paused_at,omitempty"`    // when it was paused
	Holders           []Holder   `json:"holders"`                // live dispatchers holding its lanes
}

// ErrorRate is the share of the last hour's attempts that failed.
func (d Destination) ErrorRate() float64 {
	n := d.DeliveredLastHour + d.FailedLastHour
	if n == 0 {
		return 0
	}
	return float64(d.FailedLastHour) / float64(n)
}

// Holder is a live dispatcher holding some of a destination's lanes.
type Holder struct {
	Dispatcher string    `json:"dispatcher"`  // the dispatcher's ID
	Lanes      []int     `json:"lanes"`       // the lane numbers it holds
	LeaseUntil time.Time `json:"lease_until"` // when its lease ends unless renewed
}

// Dispatcher is a live dispatcher process.
type Dispatcher struct {
	ID           string    `json:"id"`           // the dispatcher's ID (worker.Config.ID)
	StartedAt    time.Time `json:"started_at"`   // when it started
	HeartbeatAt  time.Time `json:"heartbeat_at"` // its last heartbeat
	AliveUntil   time.Time `json:"alive_until"`  // when it counts as gone without a heartbeat
	Destinations []string  `json:"destinations"` // the destinations it serves
}

// Destinations is the destinations page.
type Destinations struct {
	Destinations []Destination `json:"destinations"` // every destination's state
	Dispatchers  []Dispatcher  `json:"dispatchers"`  // the live dispatchers
}

func (s *store) destinations(ctx context.Context) (Destinations, error) {
	var dests []Destination
	err := pendingsql.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, s.q.destinations, pendingsql.Budget)
		if err != nil {
			return err
		}
		dests, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Destination, error) {
			var d Destination
			err := row.Scan(&d.Name, &d.Pending, &d.OldestPending, &d.PendingCapped, &d.Dead, &d.DeliveredLastHour,
				&d.FailedLastHour, &d.Paused, &d.PauseReason, &d.PausedAt)
			d.Holders = []Holder{}
			return d, err
		})
		return err
	})
	if err != nil {
		return Destinations{}, fmt.Errorf("console: destinations: %w", err)
	}
	rows, err := s.pool.Query(ctx, s.q.lanes)
	if err != nil {
		return Destinations{}, fmt.Errorf("console: lanes: %w", err)
	}
	var dest string
	var h Holder
	_, err = pgx.ForEachRow(rows, []any{&dest, &h.Dispatcher, &h.Lanes, &h.LeaseUntil}, func() error {
		for i := range dests {
			if dests[i].Name == dest {
				dests[i].Holders = append(dests[i].Holders, h)
			}
		}
		return nil
	})
	if err != nil {
		return Destinations{}, fmt.Errorf("console: lanes: %w", err)
	}
	rows, err = s.pool.Query(ctx, s.q.dispatchers)
	if err != nil {
		return Destinations{}, fmt.Errorf("console: dispatchers: %w", err)
	}
	disp, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Dispatcher])
	if err != nil {
		return Destinations{}, fmt.Errorf("console: dispatchers: %w", err)
	}
	return Destinations{Destinations: dests, Dispatchers: disp}, nil
}

// FailureGroup counts the inbox failure log's rows of one source and kind.
type FailureGroup struct {
	Source     string            `json:"source"`     // the inbox source
	Kind       inbox.FailureKind `json:"kind"`       // how receipts failed
	Events     int64             `json:"events"`     // distinct events
	Deliveries int64             `json:"deliveries"` // failed receipts in all
	LastSeen   time.Time         `json:"last_seen"`  // the latest failure
}

// Failures is the failures page.
type Failures struct {
	Groups []FailureGroup  `json:"groups"` // counts by source and kind
	Recent []inbox.Failure `json:"recent"` // the latest failures
}

func (s *store) failures(ctx context.Context, source, kind string) (Failures, error) {
	rows, err := s.pool.Query(ctx, s.q.failureSummary)
	if err != nil {
		return Failures{}, fmt.Errorf("console: failures: %w", err)
	}
	groups, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FailureGroup])
	if err != nil {
		return Failures{}, fmt.Errorf("console: failures: %w", err)
	}
	recent, err := s.in.Failures(ctx, s.pool, source, "", s.limit)
	if err != nil {
		return Failures{}, err
	}
	if kind != "" {
		kept := recent[:0]
		for _, f := range recent {
			if string(f.Kind) == kind {
				kept = append(kept, f)
			}
		}
		recent = kept
	}
	return Failures{Groups: groups, Recent: recent}, nil
}

// AuditEntry is one recorded console action.
type AuditEntry struct {
	ID          int64           `json:"id"`                    // the entry's id
	At          time.Time       `json:"at"`                    // when the action ran
	Actor       string          `json:"actor"`                 // the user's name
	Role        Role            `json:"role"`                  // the user's role then
	Action      Action          `json:"action"`                // what was done
	Destination string          `json:"destination,omitempty"` // the destination acted on, if any
	Filter      json.RawMessage `json:"filter"`                // the selection, as the API received it
	Count       int64           `json:"count"`                 // how many messages it changed
}

func (s *store) auditFor(ctx context.Context, id uuid.UUID) ([]AuditEntry, error) {
	rows, err := s.pool.Query(ctx, s.q.auditForMessage, id)
	if err != nil {
		return nil, fmt.Errorf("console: audit: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[AuditEntry])
}

func (s *store) auditRecent(ctx context.Context) ([]AuditEntry, error) {
	rows, err := s.pool.Query(ctx, s.q.auditRecent, s.limit)
	if err != nil {
		return nil, fmt.Errorf("console: audit: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[AuditEntry])
}

// DeadSelection picks dead letters for a requeue or purge: by id, or by
// filter (the dead-letter list's own filters, so an action on a filtered
// list acts on that list), or All. Expect, when set, is the count the
// operator confirmed; Digest, when set, the digest of the ids confirmed (a
// dry run's "digest"): the action changes exactly those, or nothing (409).
type DeadSelection struct {
	IDs            []uuid.UUID `json:"ids,omitempty"`             // these dead letters
	Destination    string      `json:"destination,omitempty"`     // "": any destination
	Type           string      `json:"type,omitempty"`            // "": any type
	OrderingKey    string      `json:"ordering_key,omitempty"`    // "": any key
	IdempotencyKey string      `json:"idempotency_key,omitempty"` // "": any key
	Since          time.Time   `json:"since,omitzero"`            // created at or after Since
	Until          time.Time   `json:"until,omitzero"`            // created before Until
	All            bool        `json:"all,omitempty"`             // every dead letter
	Expect         *int64      `json:"expect,omitempty"`          // the count confirmed, nil if none
	Digest         string      `json:"digest,omitempty"`          // the digest of the ids confirmed, "" if none
}

func (d DeadSelection) filter() outbox.Filter {
	return outbox.Filter{IDs: d.IDs, Destination: d.Destination, Type: d.Type, Since: d.Since, Until: d.Until,
		OrderingKey: d.OrderingKey, IdempotencyKey: d.IdempotencyKey}
}

// empty is a selection that names nothing: refused, as the CLI refuses a
// requeue without a filter or --all.
func (d DeadSelection) empty() bool {
	return !d.All && len(d.IDs) == 0 && d.Destination == "" && d.Type == "" && d.OrderingKey == "" &&
		d.IdempotencyKey == "" && d.Since.IsZero() && d.Until.IsZero()
}

// selectionDigest is the hex SHA-256 of the ids, sorted, one per line: what
// a confirmation names, checked again by the action inside its transaction.
func selectionDigest(ids []uuid.UUID) string {
	sorted := slices.Clone(ids)
	slices.SortFunc(sorted, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	for _, id := range sorted {
		h.Write([]byte(id.String() + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// deadNow counts the dead letters sel matches now, and their digest.
func (s *store) deadNow(ctx context.Context, sel DeadSelection) (int64, string, error) {
	ids, err := s.out.DeadIDs(ctx, s.pool, sel.filter())
	if err != nil {
		return 0, "", err
	}
	return int64(len(ids)), selectionDigest(ids), nil
}

// changeDead requeues or purges, and records the action, in one
// transaction; a count that differs from sel.Expect, or ids whose digest
// differs from sel.Digest, roll it all back.
func (s *store) changeDead(ctx context.Context, p principal, action string, sel DeadSelection, maxIDs int) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		change := s.out.RequeueIDs
		if action == "purge" {
			change = s.out.PurgeDeadIDs
		}
		ids, err := change(ctx, tx, sel.filter())
		if err != nil {
			return err
		}
		n = int64(len(ids))
		if sel.Expect != nil && *sel.Expect != n {
			return errCountChanged
		}
		if sel.Digest != "" && sel.Digest != selectionDigest(ids) {
			return errCountChanged
		}
		if n == 0 {
			return nil // nothing happened, nothing to record
		}
		return s.audit(ctx, tx, p, action, sel.Destination, sel.recorded(), n, ids[:min(len(ids), maxIDs)])
	})
	return n, err
}

// recorded is the selection as the audit keeps it: the filter, and how
// many ids were ticked rather than the ids (up to 1 MiB of them; the ids
// the action changed go to message_ids, capped). The confirmation's count
// and digest are left out: the row's count says what happened.
func (d DeadSelection) recorded() any {
	type auditSelection struct {
		DeadSelection
		IDsSelected int `json:"ids_selected,omitempty"`
	}
	a := auditSelection{DeadSelection: d, IDsSelected: len(d.IDs)}
	a.IDs, a.Expect, a.Digest = nil, nil, ""
	return a
}

func (s *store) audit(ctx context.Context, tx pgx.Tx, p principal, action, dest string, what any, n int64, ids []uuid.UUID) error {
	b, err := json.Marshal(what)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []uuid.UUID{}
	}
	if _, err := tx.Exec(ctx, s.q.auditInsert, p.Name, string(p.Role), action, opt(dest), string(b), n, pgid.Many(ids)); err != nil {
		return fmt.Errorf("console: audit: %w", err)
	}
	return nil
}

// maxReason caps a pause's reason, in bytes: it is shown on every page of
// the destination and read by every dispatcher.
const maxReason = 500

// setPaused pauses or resumes a destination and records it; a pause of a
// paused destination, or a resume of a running one, changes nothing and
// reports false.
func (s *store) setPaused(ctx context.Context, p principal, name string, pause bool, reason string) (bool, error) {
	if len(reason) > maxReason {
		return false, badRequest(fmt.Errorf("reason: at most %d bytes", maxReason))
	}
	var changed bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var known bool
		if err := tx.QueryRow(ctx, s.q.destinationKnown, name, s.configured).Scan(&known); err != nil {
			return fmt.Errorf("console: destination: %w", err)
		}
		if !known {
			return errNotFound
		}
		var err error
		action := "pause"
		if pause {
			if reason == "" {
				reason = "paused by " + p.Name + " in the console"
			}
			changed, err = s.out.PauseDestination(ctx, tx, name, reason)
		} else {
			action = "resume"
			err = s.out.ResumeDestination(ctx, tx, name)
			changed = err == nil
			if errorsIsNotPaused(err) {
				err = nil
			}
		}
		if err != nil || !changed {
			return err
		}
		return s.audit(ctx, tx, p, action, name, map[string]string{"reason": reason}, 0, nil)
	})
	return changed, err
}
