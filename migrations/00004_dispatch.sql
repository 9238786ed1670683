-- Dispatcher state: lanes and their leases, delivery attempts, destination
-- pauses, live dispatchers. Runs with search_path set to the target schema.

-- +goose Up

-- Messages are spread over a fixed number of lanes by a hash of the
-- ordering key (unkeyed messages by id). One dispatcher at a time drains a
-- lane, so a key's messages go out one at a time, in sequence.
ALTER TABLE outbox_messages
    ADD COLUMN lane smallint NOT NULL
        GENERATED ALWAYS AS ((hashtext(coalesce(ordering_key, id::text)) & 2147483647) % 32) STORED;
-- A requeued dead letter gets a fresh attempt budget and age, while its
-- attempt numbers (and history) continue.
ALTER TABLE outbox_messages
    ADD COLUMN attempts_base integer NOT NULL DEFAULT 0,
    ADD COLUMN requeued_at timestamptz;
DROP INDEX outbox_messages_pending_idx;
CREATE INDEX outbox_messages_lane_keyed_idx
    ON outbox_messages (lane, ordering_key, seq)
    WHERE status = 'pending' AND ordering_key IS NOT NULL;
CREATE INDEX outbox_messages_lane_unkeyed_idx
    ON outbox_messages (lane, next_attempt_at)
    WHERE status = 'pending' AND ordering_key IS NULL;
CREATE INDEX outbox_messages_pending_created_idx
    ON outbox_messages (created_at) WHERE status = 'pending';
CREATE INDEX outbox_messages_dead_idx
    ON outbox_messages (destination, created_at) WHERE status = 'dead';
CREATE INDEX outbox_messages_delivered_idx
    ON outbox_messages (delivered_at) WHERE status = 'delivered';

CREATE TABLE outbox_lanes (
    lane        smallint    PRIMARY KEY,
    owner       text,
    lease_until timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO outbox_lanes (lane) SELECT generate_series(0, 31);

CREATE TABLE outbox_dispatchers (
    id           text        PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox_attempts (
    message_id    uuid        NOT NULL REFERENCES outbox_messages (id) ON DELETE CASCADE,
    attempt       integer     NOT NULL,
    attempted_at  timestamptz NOT NULL,
    duration_ms   double precision NOT NULL,
    outcome       text        NOT NULL,
    status_code   integer,
    error         text        NOT NULL DEFAULT '',
    response_body text        NOT NULL DEFAULT '',
    dispatcher    text        NOT NULL DEFAULT '',
    PRIMARY KEY (message_id, attempt)
);

-- A destination that answered 410 Gone is paused until an operator resumes it.
CREATE TABLE outbox_destinations (
    name      text        PRIMARY KEY,
    paused    boolean     NOT NULL DEFAULT false,
    reason    text        NOT NULL DEFAULT '',
    paused_at timestamptz
);

-- Wake only the lane that has work: the notification carries the lane.
-- Identical notifications in one transaction are sent once.
DROP TRIGGER outbox_messages_notify ON outbox_messages;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_outbox', NEW.lane::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_messages_notify
    AFTER INSERT OR UPDATE OF status, next_attempt_at ON outbox_messages
    FOR EACH ROW WHEN (NEW.status = 'pending' AND NEW.next_attempt_at <= now())
    EXECUTE FUNCTION outbox_notify();

-- +goose Down
DROP TRIGGER outbox_messages_notify ON outbox_messages;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_outbox', '');
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_messages_notify
    AFTER INSERT ON outbox_messages
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
DROP TABLE outbox_destinations;
DROP TABLE outbox_attempts;
DROP TABLE outbox_dispatchers;
DROP TABLE outbox_lanes;
DROP INDEX outbox_messages_delivered_idx;
DROP INDEX outbox_messages_dead_idx;
DROP INDEX outbox_messages_pending_created_idx;
DROP INDEX outbox_messages_lane_unkeyed_idx;
DROP INDEX outbox_messages_lane_keyed_idx;
ALTER TABLE outbox_messages DROP COLUMN lane, DROP COLUMN attempts_base, DROP COLUMN requeued_at;
CREATE INDEX outbox_messages_pending_idx
    ON outbox_messages (next_attempt_at) WHERE status = 'pending';
