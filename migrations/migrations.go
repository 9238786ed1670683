// Package migrations holds outboxd's goose migrations, embedded in the binary,
// and a small Migrator that applies them.
//
// One run creates outboxd's tables and River's tables (River's own migrations,
// called from a goose Go migration at a pinned River version) in one schema,
// "outboxd" by default. The version table is our own, outboxd_migrations in
// that schema, so a database that already uses goose for its own tables keeps
// its goose_db_version untouched. Concurrent runs are serialised by goose's
// PostgreSQL session locker (an advisory lock derived from the schema name).
//
// FS is exported for teams that run migrations with their own goose tooling:
// run it with search_path set to the target schema, and register
// GoMigrations(schema) as Go migrations.
package migrations

import (
	"embed"
)

// FS holds the SQL migrations. Statements name no schema: they run with
// search_path set to the target schema.
//
//go:embed *.sql
var FS embed.FS

// VersionTable is the name of goose's version table inside the schema.
const VersionTable = "outboxd_migrations"

// RiverVersion is the River migration version that these migrations bring the
// schema to. It is pinned so that a River upgrade never changes the schema
// behind the operator's back: a new goose migration raises it.
const RiverVersion = 8
