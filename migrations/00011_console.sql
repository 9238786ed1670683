-- The operator console (console/): an audit table for its actions, and an
-- index on outbox_attempts (attempted_at) for its destinations page (the
-- last hour's attempts). Its searches use the indexes the hot paths already
-- have (docs/design.md, "Console"): no index here adds a write to an
-- enqueue or a receipt. The attempts index is built CONCURRENTLY, so
-- outside a transaction, after dropping what a failed earlier attempt may
-- have left (as migration 8 does).
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
-- The destinations page counts the last hour's attempts: without this it
-- reads every attempt kept. Attempts are written by the dispatcher after a
-- delivery, never on the enqueue path.
DROP INDEX CONCURRENTLY IF EXISTS outbox_attempts_attempted_at_idx;
CREATE INDEX CONCURRENTLY outbox_attempts_attempted_at_idx ON outbox_attempts (attempted_at);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS outbox_attempts_attempted_at_idx;
DROP TABLE IF EXISTS console_audit;
