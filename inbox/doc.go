// Package inbox receives webhooks: Receiver is an http.Handler per source
// that verifies the sender's signature (package inbox/verify), records the
// event and runs the application's handler in one transaction, and answers
// with status codes that keep the sender's retry signal honest (200 new or
// duplicate, 4xx never retry, 5xx retry; docs/receiving.md has the table).
// Underneath, Inbox.Record records an event inside the caller's own
// transaction and tells whether it is new or a duplicate, for applications
// that run the transaction themselves.
//
// # Guarantee
//
// For a given (source, event id) inside the dedupe window, Record reports
// New to exactly one committed transaction, however many times and however
// concurrently the event arrives. Do the business writes in that same
// transaction: they then commit at most once. A duplicate is reported as
// such and the caller changes nothing (and answers 2xx). If the transaction
// that saw New rolls back, its record disappears with it and the next
// delivery is New again.
//
// Concurrent deliveries of one event wait on each other inside PostgreSQL:
// the INSERT ... ON CONFLICT of the second blocks on the first's
// uncommitted row, then reports a duplicate if the first committed or New if
// it rolled back. The caller's transaction is never aborted by a unique
// violation.
//
// Failed and rejected receipts of verified events are logged for operators
// (Failures); async sources hand the work to River (AsyncWorker); package
// inbox/inboxtest helps users test their handlers under duplicate delivery.
//
// # Limits
//
// The window is per source (Config.SourceTTL), 72 h + 24 h by default. After
// a key expires the same id is New again, which is what makes a deliberate
// replay possible. Events whose provider sends no stable id are keyed on a
// hash of their body (BodyID), best-effort (Event.BestEffort): two events
// with identical bodies are one. A rejected event is answered 422 on every
// delivery. docs/receiving.md says which id and which event time each
// provider gives.
//
// Under REPEATABLE READ or SERIALIZABLE isolation a concurrent duplicate
// fails with a serialization error (SQLSTATE 40001) instead of waiting; treat
// it as transient (answer 503) and the sender's retry sees a duplicate.
package inbox
