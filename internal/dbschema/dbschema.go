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
	"strings"
)

// Default is the schema used when none is configured.
const Default = "outboxd"

// placeholder is the token that queries use where the schema name goes.
const placeholder = "{{schema}}"

var valid = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports whether name can be used as a schema name: lower-case
// letters, digits and underscores, not starting with a digit, at most 63
// bytes (PostgreSQL's identifier limit).
func Validate(name string) error {
	if !valid.MatchString(name) {
		return fmt.Errorf("invalid schema name %q: use lower-case letters, digits and underscores, starting with a letter or underscore, at most 63 characters", name)
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
