-- The operator console (console/): an audit table for its actions, and
-- indexes for its searches. Indexes on the busy tables are built
-- CONCURRENTLY, so outside a transaction, and each build first drops what a
-- failed earlier attempt may have left (as migration 8 does).
-- Runs with search_path set to the target schema.

-- +goose NO TRANSACTION
-- +goose Up
-- One row per action taken in the console or its API: who, when, what, and
-- the messages it touched (message_ids, capped by the console; count is
-- exact), so a message's page shows every action taken on it.
CREATE TABLE IF NOT EXISTS console_audit (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    role        text        NOT NULL,
    action      text        NOT NULL
        CHECK (action IN ('requeue', 'purge', 'pause', 'resume')),
    destination text,
    filter      jsonb       NOT NULL DEFAULT '{}',
    count       bigint      NOT NULL DEFAULT 0,
    message_ids uuid[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS console_audit_at_idx ON console_audit (at);
CREATE INDEX IF NOT EXISTS console_audit_message_ids_idx ON console_audit USING gin (message_ids);
-- Search by a reference's value whatever its name ("ada@example.com" finds
-- the event whether the handler called it email or contact_email): the
-- values as a jsonb array, indexed for @>. jsonb_path_query_array is
-- immutable, so it can be indexed.
DROP INDEX CONCURRENTLY IF EXISTS inbox_events_ref_values_idx;
CREATE INDEX CONCURRENTLY inbox_events_ref_values_idx
    ON inbox_events USING gin (jsonb_path_query_array(refs, '$.*') jsonb_path_ops);
-- Search by event id without its source (the primary key starts with source).
DROP INDEX CONCURRENTLY IF EXISTS inbox_events_event_id_idx;
CREATE INDEX CONCURRENTLY inbox_events_event_id_idx ON inbox_events (event_id);
-- Search messages by idempotency key without the destination (the unique
-- index starts with destination).
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_idempotency_only_idx;
CREATE INDEX CONCURRENTLY outbox_messages_idempotency_only_idx ON outbox_messages (idempotency_key);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_idempotency_only_idx;
DROP INDEX CONCURRENTLY IF EXISTS inbox_events_event_id_idx;
DROP INDEX CONCURRENTLY IF EXISTS inbox_events_ref_values_idx;
DROP TABLE IF EXISTS console_audit;
