-- Inbox events: the signing time apart from the event's own time, and ids
-- too long for the primary key's index stored by hash. Only new nullable
-- columns: a change of the catalog, no rewrite, so the table's lock is
-- brief (and bounded by lock_timeout, so that a migration stuck behind a
-- long transaction fails instead of queueing every receipt behind it).
-- The index of migration 8 and the scrub of migration 9 work on the rows.
-- Runs with search_path set to the target schema.

-- +goose Up
SET LOCAL lock_timeout = '10s';
-- occurred_at is the event's own time from the payload (Stripe "created"...);
-- signed_at the time the delivery was signed, which changes on every retry.
-- Rows written before keep their occurred_at: the receiver stored the
-- signing time there, but Inbox.Record callers stored their own event
-- time, and the two cannot be told apart; the rows expire with their window.
ALTER TABLE inbox_events
    ADD COLUMN signed_at timestamptz,
    -- The provider's id when event_id holds its SHA-256 instead: a btree
    -- entry cannot exceed about 2.7 KB, and an authentic event must not be
    -- refused for its id's length.
    ADD COLUMN original_id text;

-- +goose Down
SET LOCAL lock_timeout = '10s';
ALTER TABLE inbox_events DROP COLUMN signed_at, DROP COLUMN original_id;
