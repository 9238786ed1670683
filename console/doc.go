// Package console is outboxd's operator console: server-rendered web pages
// and an admin JSON API (under /api/) that answer the questions operators
// ask at 2 a.m. from a browser. Which events arrived, found by event id,
// source, status, time or any reference the handlers stored (email, contact
// id, phone, record id); what each caused downstream; every attempt of a
// message with its response; the dead letters, requeued or purged with a
// confirmation and an audit record; the destinations with their backlog,
// rates and pauses; the inbox's failure log.
//
// Guarantees and limits:
//
//   - Never open by accident: New refuses a Config without users unless
//     InsecureNoAuth is set. Users authenticate with HTTP basic auth or a
//     bearer token; a Viewer reads, only an Admin may requeue, purge, pause
//     or resume.
//   - Every state-changing request passes net/http's CrossOriginProtection
//     (Sec-Fetch-Site / Origin) and carries a CSRF token bound to the user
//     (an HMAC under a key drawn at start), except requests authenticated
//     with a bearer token, which a browser never attaches by itself.
//   - Every action runs in one transaction with its audit row
//     (console_audit, migration 11): an action is recorded if and only if
//     it happened.
//   - A requeue or purge is confirmed with the count and the digest of the
//     ids it will touch (until pinned at confirmation); if they changed by
//     the time it is confirmed, nothing changes and the operator is asked
//     again (409).
//   - Searches collect their matches through indexes the hot paths keep
//     anyway, before sorting: their plans do not depend on statistics.
//   - Each request has a deadline (DefaultRequestTimeout); a database that
//     does not answer is a 503, never a hung page. Give the console a pool
//     of its own (ConfigurePool).
//   - Credentials are never logged, echoed or stored; payloads and headers
//     are shown escaped (html/template), capped in size, with credential
//     headers redacted.
//
// The pages and the API share one query layer (store.go), which reuses the
// outbox and inbox packages' operator calls (outbox.RequeueIDs,
// outbox.PurgeDeadIDs, outbox.PauseDestination, inbox.Get...). The exported
// types other than Console, Config, User and Role are the JSON shapes of
// the API's answers (docs/operations.md, "Admin JSON API").
package console
