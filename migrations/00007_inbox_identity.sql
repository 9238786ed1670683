-- Inbox events: the signing time apart from the event's own time, ids too
-- long for the primary key's index stored by hash, and no secrets at rest.
-- Runs with search_path set to the target schema.

-- +goose Up
-- occurred_at is the event's own time from the payload (Stripe "created"...);
-- signed_at the time the delivery was signed, which changes on every retry.
ALTER TABLE inbox_events
    ADD COLUMN signed_at timestamptz,
    -- The provider's id when event_id holds its SHA-256 instead: a btree
    -- entry cannot exceed about 2.7 KB, and an authentic event must not be
    -- refused for its id's length.
    ADD COLUMN original_id text;

-- Async events waiting for their handler: the purge keeps them whatever
-- their age, and operators are alerted on the oldest (inbox.Unprocessed).
CREATE INDEX inbox_events_received_idx ON inbox_events (received_at) WHERE status = 'received';

-- Rows written before this migration keep their occurred_at: the receiver
-- stored the signing time there, but Inbox.Record callers stored their own
-- event time, and the two cannot be told apart; the rows expire with their
-- window. Their headers are another matter: every header but a short list
-- of credentials was stored, and signatures, tokens and keys there make a
-- captured request replayable by anyone who can read the table. Scrub them
-- with the name rule the inbox now applies before storing.
UPDATE inbox_events
SET headers = COALESCE((
        SELECT jsonb_object_agg(k, v) FROM jsonb_each(headers) AS h(k, v)
        WHERE lower(k) !~ '(token|secret|signature|key|auth|cookie|password|hmac|credential|session)'), '{}')
WHERE EXISTS (SELECT 1 FROM jsonb_object_keys(headers) AS h(k)
              WHERE lower(k) ~ '(token|secret|signature|key|auth|cookie|password|hmac|credential|session)');

-- +goose Down
DROP INDEX inbox_events_received_idx;
ALTER TABLE inbox_events DROP COLUMN signed_at, DROP COLUMN original_id;
