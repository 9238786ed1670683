// Package crm is a small CRM deals service built on outboxd's public API:
// contacts deduped on email, deals with pipeline stages, tasks for sales
// reps and notes, fed by signed webhooks from three senders, with downstream
// calls through the outbox.
package crm

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaSQL creates the CRM's own tables (schema "crm"). It is idempotent, so
// the service applies it at every start; outboxd's tables come from
// outboxd's migrations.
const schemaSQL = `
CREATE SCHEMA IF NOT EXISTS crm;
CREATE TABLE IF NOT EXISTS crm.contacts (
    id         bigserial   PRIMARY KEY,
    email      text        NOT NULL UNIQUE,
    name       text        NOT NULL,
    phone      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS crm.deals (
    id         text        PRIMARY KEY,
    contact_id bigint      NOT NULL REFERENCES crm.contacts (id),
    title      text        NOT NULL,
    amount     bigint      NOT NULL DEFAULT 0,
    stage      text        NOT NULL DEFAULT 'new'
        CHECK (stage IN ('new', 'qualified', 'meeting', 'negotiation', 'won', 'lost')),
    -- The time of the event that set the stage: an older event never rolls
    -- the deal back.
    stage_at   timestamptz,
    won_at     timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS crm.tasks (
    id         bigserial   PRIMARY KEY,
    deal_id    text        NOT NULL REFERENCES crm.deals (id),
    assignee   text        NOT NULL,
    title      text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS crm.notes (
    id         bigserial   PRIMARY KEY,
    deal_id    text        NOT NULL REFERENCES crm.deals (id),
    body       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);`

// Migrate creates the CRM's tables.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, schemaSQL); err != nil {
		return fmt.Errorf("crm: schema: %w", err)
	}
	return nil
}
