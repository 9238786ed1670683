-- Enqueues no longer NOTIFY inside the enqueueing transaction: PostgreSQL
-- holds a global lock from a notifying transaction's pre-commit through its
-- commit, so every producer's commit queued behind the others (no group
-- commit; enqueue ran 2.4x slower at 16 connections). The outbox announces
-- commits from outside (outbox.Notifier) or, without one, from inside its
-- own statement (outbox.Enqueue); the trigger keeps only the dispatcher's
-- and operators' updates that make a message due again (requeue, a pause
-- lifted, a zero backoff).
-- Runs with search_path set to the target schema.

-- +goose Up
DROP TRIGGER outbox_messages_notify ON outbox_messages;
CREATE TRIGGER outbox_messages_notify
    AFTER UPDATE OF status, next_attempt_at ON outbox_messages
    FOR EACH ROW WHEN (NEW.status = 'pending' AND NEW.next_attempt_at <= now())
    EXECUTE FUNCTION outbox_notify();

-- +goose Down
DROP TRIGGER outbox_messages_notify ON outbox_messages;
CREATE TRIGGER outbox_messages_notify
    AFTER INSERT OR UPDATE OF status, next_attempt_at ON outbox_messages
    FOR EACH ROW WHEN (NEW.status = 'pending' AND NEW.next_attempt_at <= now())
    EXECUTE FUNCTION outbox_notify();
