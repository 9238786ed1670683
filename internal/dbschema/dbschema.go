// Package dbschema validates the name of the schema that holds outboxd's
// objects and renders queries into it.
//
// The schema is configuration, never request data, and it is checked against
// a strict identifier pattern before use, so putting it into SQL text is safe
// and needs no quoting. Values always travel as bind parameters.
package dbschema

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Default is the schema used when none is configured.
const Default = "outboxd"

// MaxLen is the longest schema name accepted. River, which runs its jobs in
// the same schema, refuses names over 46 characters; that is also well
// within the NOTIFY channel limit (schema + "_outbox" in 63 bytes).
const MaxLen = 46

// DispatcherMigration is the last migration the dispatcher's statements
// need (worker refuses to start without it); later ones serve the
// producers, which work on either side of them (migration 15).
const DispatcherMigration = 14

// placeholder is the token that queries use where the schema name goes.
const placeholder = "{{schema}}"

var valid = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Validate reports whether name can be used as a schema name: lower-case
// letters, digits and underscores, not starting with a digit, at most
// MaxLen characters, not a reserved word (the SQL is unquoted) and not
// starting with pg_ (PostgreSQL keeps those names for itself).
func Validate(name string) error {
	switch {
	case !valid.MatchString(name):
		return fmt.Errorf("invalid schema name %q: use lower-case letters, digits and underscores, starting with a letter or underscore", name)
	case len(name) > MaxLen:
		return fmt.Errorf("invalid schema name %q: at most %d characters (River, which shares the schema, allows no more)", name, MaxLen)
	case slices.Contains(reservedWords, name):
		return fmt.Errorf("invalid schema name %q: a reserved word in PostgreSQL; choose another name", name)
	case strings.HasPrefix(name, "pg_"):
		return fmt.Errorf("invalid schema name %q: names starting with pg_ are reserved for PostgreSQL's own schemas", name)
	}
	return nil
}

// OrDefault returns name, or Default when name is empty.
func OrDefault(name string) string {
	if name == "" {
		return Default
	}
	return name
}

// Render puts the schema name into a query written with {{schema}}.
// The caller must have validated schema.
func Render(query, schema string) string {
	return strings.ReplaceAll(query, placeholder, schema)
}

// NotifyChannel is the LISTEN/NOTIFY channel on which the outbox announces
// committed messages in the given schema. The trigger in the migrations builds
// the same name from TG_TABLE_SCHEMA.
func NotifyChannel(schema string) string {
	return schema + "_outbox"
}
