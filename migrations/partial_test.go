package migrations_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"
)

// When a migration fails, the ones applied before it in the same run come
// back as our Results, and the error names the version that failed (goose's
// error still reachable), so a user needs no goose type to see either.
func TestUpFailingPartwayReturnsWhatWasApplied(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, m := upFresh(t)
	if _, err := m.DownTo(ctx, 8); err != nil {
		t.Fatal(err)
	}
	// Migration 11 keeps an existing console_audit (IF NOT EXISTS), then
	// fails to index its missing column: 9 and 10 apply first.
	if _, err := db.ExecContext(ctx, `CREATE TABLE outboxd.console_audit (id int)`); err != nil {
		t.Fatal(err)
	}
	res, err := m.Up(ctx)
	if err == nil {
		t.Fatal("Up succeeded over a broken console_audit")
	}
	if !strings.Contains(err.Error(), "migration 11") {
		t.Errorf("error %q does not name migration 11", err)
	}
	if pe := (*goose.PartialError)(nil); !errors.As(err, &pe) {
		t.Errorf("goose's error is not wrapped: %v", err)
	}
	var versions []int64
	for _, r := range res {
		versions = append(versions, r.Version)
	}
	if len(versions) != 2 || versions[0] != 9 || versions[1] != 10 {
		t.Fatalf("results %v, want the versions applied before the failure, 9 and 10", versions)
	}
	if v, err := m.Version(ctx); err != nil || v != 10 {
		t.Fatalf("version after the failure: %d, %v; want 10", v, err)
	}
}
