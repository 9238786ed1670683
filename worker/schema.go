package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxd/outboxd/internal/dbschema"
)

// The dispatcher's statements need the schema of its version (migration
// 13). Start refuses an older one; what follows covers a schema taken back
// while the dispatcher runs (`outboxd migrate down` before stopping it):
// the recording statement then fails after every batch was sent, and the
// messages, still pending, would be claimed and sent again and again. So
// a look every AcquireInterval (watchSchema), or the first such failure,
// stops all claims of this dispatcher, /readyz turns unready, and one
// probe a second looks for the schema to come back.

// errSchemaBehind reports a schema older than this dispatcher's statements.
func errSchemaBehind(schema string, err error) error {
	return fmt.Errorf("schema %q is not migrated, older than this dispatcher (it needs migration %d), or missing a table of it (renamed or dropped by hand): run `outboxd migrate up` first, or undo the change: %w", schema, dbschema.DispatcherMigration, err)
}

// errRetryIndex: the schema has the columns but not a valid retry heads'
// index.
var errRetryIndex = errors.New("index outbox_messages_retry_heads_idx is missing or invalid (migration 14 not applied, still being built, or its build was cut short)")

// errTableMissing: a table of the dispatcher's statements is not there.
var errTableMissing = errors.New("outbox_attempts, outbox_lanes, outbox_dispatchers or outbox_destinations is missing (renamed, dropped, or not migrated)")

// probeSchema checks the columns, the index and the tables this version's
// statements need.
func (d *Dispatcher) probeSchema(ctx context.Context) error {
	var valid, tables bool
	if err := d.pool.QueryRow(ctx, d.q.schemaProbe).Scan(&valid, &tables); err != nil {
		return err
	}
	if !tables {
		return errTableMissing
	}
	if !valid {
		return errRetryIndex
	}
	return nil
}

// isSchemaError tells an undefined column, table, schema or function, or
// a missing index: the schema is not the one these statements were
// written for.
func isSchemaError(err error) bool {
	if errors.Is(err, errRetryIndex) || errors.Is(err, errTableMissing) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42703", "42P01", "3F000", "42883":
		return true
	}
	return false
}

// watchSchema looks at a schema believed current every AcquireInterval,
// and stops claims when it went behind: a `migrate down` is noticed
// without waiting for a batch sent on it to fail to record (its results
// are then kept and recorded once migrated up, while the lease holds: an
// operator's trial had /readyz 200 until a message came). Apart from lane
// balancing, so that a probe behind a lock (5 s at most), or the lane rows
// made once the schema is back, never delays a renewal. Other errors (the
// database away) are the health tracker's.
func (d *Dispatcher) watchSchema(ctx context.Context) {
	for sleep(ctx, d.cfg.AcquireInterval) {
		if d.schemaBehind.Load() {
			// Looked for here too (at most once per schemaProbeEvery,
			// whoever asks): runners ask only while they run and are not
			// paused, and a dispatcher may have neither.
			d.schemaOK(ctx)
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := d.probeSchema(pctx); err != nil && isSchemaError(err) {
			d.schemaFailed(err)
		}
		cancel()
	}
}

// schemaProbeEvery is how often a dispatcher whose schema went behind
// checks whether it is back.
const schemaProbeEvery = time.Second

// schemaFailed stops claims after err, a schema error from a statement.
func (d *Dispatcher) schemaFailed(err error) {
	if d.schemaBehind.Swap(true) {
		return
	}
	d.log.Error("delivery stopped: "+errSchemaBehind(d.cfg.Schema, err).Error()+
		"; nothing is claimed or sent until the schema is migrated again", "probe_every", schemaProbeEvery.String())
}

// schemaOK reports whether runners may claim: true unless the schema went
// behind, and then only once a probe (at most one per schemaProbeEvery,
// whichever runner asks; the others do not wait for it) finds it migrated
// again.
func (d *Dispatcher) schemaOK(ctx context.Context) bool {
	if !d.schemaBehind.Load() {
		return true
	}
	if !d.schemaMu.TryLock() { // another runner is probing: wait for its answer
		return false
	}
	defer d.schemaMu.Unlock()
	if !d.schemaBehind.Load() {
		return true
	}
	if time.Since(d.schemaProbed) < schemaProbeEvery {
		return false
	}
	d.schemaProbed = time.Now()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.probeSchema(ctx); err != nil {
		return false
	}
	// A schema taken back past the leases' table (migration 6) comes
	// back without lane rows: nothing could be acquired again.
	if _, err := d.pool.Exec(ctx, d.q.ensureLanes, d.names); err != nil {
		return false
	}
	d.schemaBehind.Store(false)
	d.log.Info("the schema is current again; delivery resumes")
	return true
}
