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
	"github.com/outboxd/outboxd/outbox"
)

// Destination is one destination's state.
type Destination struct {
	Name    string `json:"name"`
	Pending int64  `json:"pending"`
	// PendingCapped: the count stopped at its share of the read's row
	// budget (internal/pendingsql): Pending is then a lower bound.
	PendingCapped bool       `json:"pending_capped"`
	OldestPending *time.Time `json:"oldest_pending,omitempty"`
	Dead          int64      `json:"dead"`
	// DeliveredLastHour and FailedLastHour count the attempts of the last
	// hour by outcome.
	DeliveredLastHour int64      `json:"delivered_last_hour"`
	FailedLastHour    int64      `json:"failed_last_hour"`
	Paused            bool       `json:"paused"`
	PauseReason       string     `json:"pause_reason,omitempty"`
	PausedAt          *time.Time `json:"paused_at,omitempty"`
	Holders           []Holder   `json:"holders"`
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
	Dispatcher string    `json:"dispatcher"`
	Lanes      []int     `json:"lanes"`
	LeaseUntil time.Time `json:"lease_until"`
}

// Dispatcher is a live dispatcher process.
type Dispatcher struct {
	ID           string    `json:"id"`
	StartedAt    time.Time `json:"started_at"`
	HeartbeatAt  time.Time `json:"heartbeat_at"`
	AliveUntil   time.Time `json:"alive_until"`
	Destinations []string  `json:"destinations"`
}

// Destinations is the destinations page.
type Destinations struct {
	Destinations []Destination `json:"destinations"`
	Dispatchers  []Dispatcher  `json:"dispatchers"`
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
	Source     string            `json:"source"`
	Kind       inbox.FailureKind `json:"kind"`
	Events     int64             `json:"events"`
	Deliveries int64             `json:"deliveries"`
	LastSeen   time.Time         `json:"last_seen"`
}

// Failures is the failures page.
type Failures struct {
	Groups []FailureGroup  `json:"groups"`
	Recent []inbox.Failure `json:"recent"`
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
	ID          int64           `json:"id"`
	At          time.Time       `json:"at"`
	Actor       string          `json:"actor"`
	Role        Role            `json:"role"`
	Action      Action          `json:"action"`
	Destination string          `json:"destination,omitempty"`
	Filter      json.RawMessage `json:"filter"`
	Count       int64           `json:"count"`
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
// operator confirmed; Digest, when set, the digest (selectionDigest) of the
// ids confirmed: the action changes exactly those, or nothing (409).
type DeadSelection struct {
	IDs            []uuid.UUID `json:"ids,omitempty"`
	Destination    string      `json:"destination,omitempty"`
	Type           string      `json:"type,omitempty"`
	OrderingKey    string      `json:"ordering_key,omitempty"`
	IdempotencyKey string      `json:"idempotency_key,omitempty"`
	Since          time.Time   `json:"since,omitzero"`
	Until          time.Time   `json:"until,omitzero"`
	All            bool        `json:"all,omitempty"`
	Expect         *int64      `json:"expect,omitempty"`
	Digest         string      `json:"digest,omitempty"`
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
	if _, err := tx.Exec(ctx, s.q.auditInsert, p.Name, string(p.Role), action, opt(dest), string(b), n, ids); err != nil {
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
