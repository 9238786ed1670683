-- Failed and rejected receipts of verified webhooks, for operators: one row
-- per (source, event id, kind), counting repeats, so a retry storm of one
-- event is one row. Requests that fail verification are never written
-- (only counted in metrics), so an unauthenticated flood cannot grow it;
-- the purge removes rows older than the retention.

-- +goose Up
CREATE TABLE inbox_failures (
    source      text        NOT NULL,
    event_id    text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('rejected', 'failed', 'panic')),
    reason      text        NOT NULL,
    status_code integer     NOT NULL,
    first_at    timestamptz NOT NULL DEFAULT now(),
    last_at     timestamptz NOT NULL DEFAULT now(),
    count       integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (source, event_id, kind)
);
CREATE INDEX inbox_failures_last_at_idx ON inbox_failures (last_at);

-- +goose Down
DROP TABLE inbox_failures;
