-- Indexes for async events, built without blocking receipts: CONCURRENTLY,
-- so outside a transaction. A build that failed midway leaves an invalid
-- index behind and goose records nothing, so each build first drops what a
-- previous attempt may have left.
-- Runs with search_path set to the target schema.

-- +goose NO TRANSACTION
-- +goose Up
-- Async events waiting for their handler: operators are alerted on the
-- oldest (inbox.Unprocessed).
DROP INDEX CONCURRENTLY IF EXISTS inbox_events_received_idx;
CREATE INDEX CONCURRENTLY inbox_events_received_idx ON inbox_events (received_at) WHERE status = 'received';
-- The purge never deletes an event still waiting for its handler: it finds
-- expired rows through this index, so an old async backlog is never
-- scanned again and again.
DROP INDEX CONCURRENTLY IF EXISTS inbox_events_purge_idx;
CREATE INDEX CONCURRENTLY inbox_events_purge_idx ON inbox_events (expires_at) WHERE status <> 'received';
DROP INDEX CONCURRENTLY IF EXISTS inbox_events_expires_at_idx;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS inbox_events_expires_at_idx;
CREATE INDEX CONCURRENTLY inbox_events_expires_at_idx ON inbox_events (expires_at);
DROP INDEX CONCURRENTLY IF EXISTS inbox_events_purge_idx;
DROP INDEX CONCURRENTLY IF EXISTS inbox_events_received_idx;
