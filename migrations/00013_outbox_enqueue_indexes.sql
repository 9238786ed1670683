-- An enqueue writes two index entries less (issue 9's budget: at most 3 per
-- message). outbox_messages_pending_created_idx (created_at of every
-- pending message) served only outboxd serve's /metrics collector, which
-- now reads the dispatcher's lane indexes instead, up to a cap per
-- destination; outbox_messages_caused_by_idx (the inbox event a message
-- came from) served no query of outboxd's, yet every message caused by an
-- event paid an entry in it.
-- Dropped and rebuilt CONCURRENTLY, so outside a transaction, without
-- blocking enqueues on a large table; a rebuild that failed midway leaves
-- an invalid index behind, so each rebuild first drops what a previous
-- attempt may have left.
-- Runs with search_path set to the target schema.

-- +goose NO TRANSACTION
-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_pending_created_idx;
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_caused_by_idx;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_caused_by_idx;
CREATE INDEX CONCURRENTLY outbox_messages_caused_by_idx
    ON outbox_messages (caused_by_source, caused_by_event_id)
    WHERE caused_by_event_id IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_pending_created_idx;
CREATE INDEX CONCURRENTLY outbox_messages_pending_created_idx
    ON outbox_messages (created_at) WHERE status = 'pending';
