package outbox_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/outbox"
)

// What a user passes as a DB.
var (
	_ outbox.DB = pgx.Tx(nil)
	_ outbox.DB = (*pgx.Conn)(nil)
	_ outbox.DB = (*pgxpool.Pool)(nil)
)

// DB is the outbox's own interface, not an alias of an internal package's
// type that go doc would send the user to and cannot show.
func TestDBIsDeclaredInThePackage(t *testing.T) {
	typ := reflect.TypeFor[outbox.DB]()
	if typ.PkgPath() != "github.com/outboxd/outboxd/outbox" || typ.Name() != "DB" {
		t.Fatalf("outbox.DB is %s.%s", typ.PkgPath(), typ.Name())
	}
}

// A pool variable left nil is refused by NewNotifier, naming it, rather
// than accepted to panic on the first flush.
func TestNewNotifierRefusesATypedNilDB(t *testing.T) {
	var unset *pgxpool.Pool
	if _, err := outbox.NewNotifier(unset, nil); err == nil || !strings.Contains(err.Error(), "db is nil") {
		t.Fatalf("NewNotifier(nil *pgxpool.Pool): %v, want an error naming db", err)
	}
}
