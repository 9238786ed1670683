-- outboxd core tables. Statements run with search_path set to the target
-- schema (default "outboxd"), so nothing here names a schema.

-- +goose Up
CREATE TABLE inbox_events (
    source          text        NOT NULL,
    event_id        text        NOT NULL,
    -- best_effort is true when the provider sent no stable id and the id was
    -- derived from (timestamp, type, subject): dedupe may then miss or merge.
    best_effort     boolean     NOT NULL DEFAULT false,
    event_type      text        NOT NULL DEFAULT '',
    occurred_at     timestamptz,
    received_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    -- After expires_at the key no longer counts as a duplicate, so a
    -- deliberate replay is processed afresh.
    expires_at      timestamptz NOT NULL,
    duplicate_count integer     NOT NULL DEFAULT 0,
    status          text        NOT NULL DEFAULT 'processed'
        CHECK (status IN ('received', 'processed', 'rejected')),
    status_reason   text        NOT NULL DEFAULT '',
    processed_at    timestamptz,
    payload         bytea       NOT NULL,
    headers         jsonb       NOT NULL DEFAULT '{}',
    refs            jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (source, event_id)
);
CREATE INDEX inbox_events_expires_at_idx ON inbox_events (expires_at);
CREATE INDEX inbox_events_refs_idx ON inbox_events USING gin (refs jsonb_path_ops);
CREATE INDEX inbox_events_received_at_idx ON inbox_events (received_at);

-- One row per ordering key. The enqueueing transaction increments last_seq
-- with an upsert, and the row lock it takes is held until commit, so a second
-- transaction for the same key waits and gets the next number: per key,
-- sequence order is commit order.
CREATE TABLE outbox_keys (
    ordering_key text   PRIMARY KEY,
    last_seq     bigint NOT NULL
);

CREATE TABLE outbox_messages (
    id                 uuid        PRIMARY KEY,
    destination        text        NOT NULL,
    type               text        NOT NULL DEFAULT '',
    ordering_key       text,
    seq                bigint,
    payload            bytea       NOT NULL,
    headers            jsonb       NOT NULL DEFAULT '{}',
    idempotency_key    text        NOT NULL,
    caused_by_source   text,
    caused_by_event_id text,
    step               text        NOT NULL DEFAULT '',
    status             text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts           integer     NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    last_error         text        NOT NULL DEFAULT '',
    last_status_code   integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    delivered_at       timestamptz,
    CHECK ((ordering_key IS NULL) = (seq IS NULL))
);
-- Idempotency keys are unique per destination: the downstream dedupes on them.
CREATE UNIQUE INDEX outbox_messages_idempotency_key_idx
    ON outbox_messages (destination, idempotency_key);
CREATE UNIQUE INDEX outbox_messages_ordering_idx
    ON outbox_messages (ordering_key, seq) WHERE ordering_key IS NOT NULL;
CREATE INDEX outbox_messages_pending_idx
    ON outbox_messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_messages_caused_by_idx
    ON outbox_messages (caused_by_source, caused_by_event_id)
    WHERE caused_by_event_id IS NOT NULL;

-- Wakes dispatchers when an enqueueing transaction commits (NOTIFY is
-- delivered at commit and dropped on rollback). The channel is named after
-- the schema so that several installations in one database stay apart.
-- +goose StatementBegin
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_outbox', '');
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_messages_notify
    AFTER INSERT ON outbox_messages
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- +goose Down
DROP TABLE outbox_messages;
DROP FUNCTION outbox_notify();
DROP TABLE outbox_keys;
DROP TABLE inbox_events;
