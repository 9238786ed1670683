-- The heads of ordering keys that failed an attempt since they were
-- queued (or requeued), by due time: a lane's sweep finds its due retries
-- through this range, at the cost of what is due, instead of walking the
-- head of every key with pending messages (worker/walk.go: a destination
-- that has been failing for a while has a backlog behind every key's
-- head, and walking 100,000 keys cost its dispatcher most of a core).
-- Only a failed attempt enters it (attempts > attempts_base: a requeue
-- sets attempts_base = attempts, an abandoned attempt raises both); an
-- enqueue and a first-try delivery add no entry. Built CONCURRENTLY,
-- outside a transaction, so as not to block enqueues on a large table; a
-- build that failed midway leaves an invalid index behind, so the build
-- first drops what an earlier attempt left.
-- Runs with search_path set to the target schema.

-- +goose NO TRANSACTION
-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_retry_heads_idx;
CREATE INDEX CONCURRENTLY outbox_messages_retry_heads_idx
    ON outbox_messages (destination, lane, next_attempt_at)
    WHERE status = 'pending' AND ordering_key IS NOT NULL
      AND attempts > attempts_base;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_retry_heads_idx;
