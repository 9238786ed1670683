-- A first-try success is recorded on its message's row instead of in an
-- outbox_attempts row: its time, duration, response body and dispatcher
-- (its status code and error, if the destination gave one with its
-- success, are last_status_code and last_error; the outcome "delivered"). That
-- spares most deliveries an insert with two index entries and a
-- foreign-key check (docs/benchmarks.md, bench-levers). Every other
-- attempt keeps its row. outbox_attempt_log shows every attempt, however
-- it was recorded. Only new nullable columns: a change of the catalog, no
-- rewrite. The ALTER waits for transactions holding outbox_messages (and
-- enqueues queue behind it meanwhile) at most lock_timeout; past it the
-- migration fails and changes nothing.
-- Runs with search_path set to the target schema.

-- +goose Up
SET LOCAL lock_timeout = '10s';
ALTER TABLE outbox_messages
    ADD COLUMN first_attempt_at timestamptz,
    ADD COLUMN first_attempt_ms double precision,
    ADD COLUMN first_attempt_body text,
    ADD COLUMN first_attempt_by text;
CREATE VIEW outbox_attempt_log AS
SELECT message_id, attempt, attempted_at, duration_ms, outcome, status_code, error, response_body, dispatcher
FROM outbox_attempts
UNION ALL
SELECT id, 1, first_attempt_at, first_attempt_ms, 'delivered', last_status_code, last_error,
       coalesce(first_attempt_body, ''), coalesce(first_attempt_by, '')
FROM outbox_messages
WHERE first_attempt_at IS NOT NULL;

-- +goose Down
SET LOCAL lock_timeout = '10s';
DROP VIEW outbox_attempt_log;
-- Back to one row per attempt before the columns go.
INSERT INTO outbox_attempts
    (message_id, attempt, attempted_at, duration_ms, outcome, status_code, error, response_body, dispatcher)
SELECT id, 1, first_attempt_at, first_attempt_ms, 'delivered', last_status_code, last_error,
       coalesce(first_attempt_body, ''), coalesce(first_attempt_by, '')
FROM outbox_messages
WHERE first_attempt_at IS NOT NULL
ON CONFLICT (message_id, attempt) DO NOTHING;
ALTER TABLE outbox_messages
    DROP COLUMN first_attempt_at, DROP COLUMN first_attempt_ms,
    DROP COLUMN first_attempt_body, DROP COLUMN first_attempt_by;
