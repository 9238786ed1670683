-- Leases per (destination, lane), fenced by a token; dispatchers announce
-- which destinations they serve and until when they count as alive.
-- Runs with search_path set to the target schema.

-- +goose Up

-- A lane is drained per destination: a dispatcher takes only the lanes of
-- destinations it has, so processes with different destination sets never
-- hold each other's messages, and a slow destination has runners of its
-- own. token grows on every acquisition: claims and recordings carry it, so
-- a process that lost the lease (frozen, cut off) can neither claim nor
-- record beside the new holder, even under the same dispatcher id.
DROP TABLE outbox_lanes;
CREATE TABLE outbox_lanes (
    destination text        NOT NULL,
    lane        smallint    NOT NULL,
    owner       text,
    token       bigint      NOT NULL DEFAULT 0,
    lease_until timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (destination, lane)
);

-- alive_until replaces a heartbeat age: each dispatcher states how long it
-- counts as live (its own lease TTL), so the others stop counting it exactly
-- when its leases run out.
ALTER TABLE outbox_dispatchers
    ADD COLUMN alive_until  timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN destinations text[]      NOT NULL DEFAULT '{}';

DROP INDEX outbox_messages_lane_keyed_idx;
DROP INDEX outbox_messages_lane_unkeyed_idx;
CREATE INDEX outbox_messages_lane_keyed_idx
    ON outbox_messages (destination, lane, ordering_key, seq)
    WHERE status = 'pending' AND ordering_key IS NOT NULL;
CREATE INDEX outbox_messages_lane_unkeyed_idx
    ON outbox_messages (destination, lane, next_attempt_at)
    WHERE status = 'pending' AND ordering_key IS NULL;

-- +goose Down
DROP INDEX outbox_messages_lane_keyed_idx;
DROP INDEX outbox_messages_lane_unkeyed_idx;
CREATE INDEX outbox_messages_lane_keyed_idx
    ON outbox_messages (lane, ordering_key, seq)
    WHERE status = 'pending' AND ordering_key IS NOT NULL;
CREATE INDEX outbox_messages_lane_unkeyed_idx
    ON outbox_messages (lane, next_attempt_at)
    WHERE status = 'pending' AND ordering_key IS NULL;
ALTER TABLE outbox_dispatchers DROP COLUMN alive_until, DROP COLUMN destinations;
DROP TABLE outbox_lanes;
CREATE TABLE outbox_lanes (
    lane        smallint    PRIMARY KEY,
    owner       text,
    lease_until timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO outbox_lanes (lane) SELECT generate_series(0, 31);
