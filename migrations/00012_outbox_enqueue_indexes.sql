-- An enqueue writes one index entry less (issue 9's budget: at most 3 per
-- message without a cause). outbox_messages_pending_created_idx (created_at
-- of every pending message) served only outboxd serve's /metrics
-- collector, which now reads the dispatcher's lane indexes instead, up to
-- a cap per destination. outbox_messages_caused_by_idx stays: the
-- console's event page finds the messages an event caused through it.
-- Dropped and rebuilt CONCURRENTLY, so outside a transaction, without
-- blocking enqueues on a large table; a rebuild that failed midway leaves
-- an invalid index behind, so each rebuild first drops what a previous
-- attempt may have left.
-- Runs with search_path set to the target schema.

-- +goose NO TRANSACTION
-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_pending_created_idx;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_pending_created_idx;
CREATE INDEX CONCURRENTLY outbox_messages_pending_created_idx
    ON outbox_messages (created_at) WHERE status = 'pending';
