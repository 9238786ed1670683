-- A message whose idempotency key is its own id's text (one enqueued with
-- no id, no key and no cause: Enqueue makes a UUIDv7 and keys it by it)
-- leaves the unique idempotency-key index: its primary key already makes
-- that key unique, and the entry cost every such enqueue and every
-- delivery of it one index entry (about 6 us of the server's 20 and 115 B
-- of WAL per delivery, make bench-record). Enqueue keeps the two forms
-- apart (outbox/sql.go: a key that is a stored message's id finds that
-- message), so a key stays unique per destination across both.
-- Built CONCURRENTLY before the full index is dropped, outside a
-- transaction, so as not to block enqueues on a large table; a build that
-- failed midway leaves an invalid index behind, so the build first drops
-- what an earlier attempt left.
-- Runs with search_path set to the target schema.

-- +goose NO TRANSACTION
-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_given_key_idx;
CREATE UNIQUE INDEX CONCURRENTLY outbox_messages_given_key_idx
    ON outbox_messages (destination, idempotency_key)
    WHERE idempotency_key <> id::text;
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_idempotency_key_idx;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_idempotency_key_idx;
CREATE UNIQUE INDEX CONCURRENTLY outbox_messages_idempotency_key_idx
    ON outbox_messages (destination, idempotency_key);
DROP INDEX CONCURRENTLY IF EXISTS outbox_messages_given_key_idx;
