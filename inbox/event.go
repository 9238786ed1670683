package inbox

import (
	"net/http"
	"time"
)

// Status is where an event stands.
type Status string

const (
	// StatusProcessed means the event's effects committed with its
	// record. This is the default for Record, whose caller does the work in
	// the same transaction.
	StatusProcessed Status = "processed"
	// StatusReceived means recorded, with work still to do (async
	// processing); the worker later calls MarkProcessed in the transaction
	// of its writes.
	StatusReceived Status = "received"
	// StatusRejected means the event was permanently refused (malformed,
	// refers to something that will never exist); kept so operators can see
	// it and so that retries stay duplicates.
	StatusRejected Status = "rejected"
)

// Event is one delivery of a webhook event, as received.
type Event struct {
	// Source names the sender ("stripe", "crm-forms"...). Required.
	Source string
	// ID is the provider's stable event id. Required: valid UTF-8 without
	// NUL bytes. Ids longer than 200 bytes are keyed by their SHA-256, the
	// original kept in the row.
	ID string
	// BestEffort marks an ID derived from the body (BodyID) because the
	// provider sent none: two events with identical bodies are one.
	BestEffort bool
	// Type is the provider's event type, if any.
	Type string
	// OccurredAt is the event's own time from the payload, if the provider
	// gives one; it stays the same on every retry, so handlers can ignore
	// an event older than the state it would overwrite.
	OccurredAt time.Time
	// SignedAt is when the delivery was signed (or sent), if the provider
	// says: it changes on every retry, so never order events by it.
	SignedAt time.Time
	// Payload is the body exactly as received.
	Payload []byte
	// Headers are the request headers; credentials are dropped before
	// storing (see Config.RedactHeaders).
	Headers http.Header
	// Refs are references for later search: contact id, email, phone,
	// record id, whatever the handler names. More can be added in the same
	// transaction with AddRefs once the handler knows them.
	Refs map[string]string
	// Status is stored when the event is new. Default StatusProcessed.
	Status Status
	// Reason explains a StatusRejected.
	Reason string
}

// Result says what Record found.
type Result struct {
	// New is true when this delivery is the first inside the dedupe window:
	// the caller does the work. False means a duplicate: change nothing.
	New bool
	// Duplicates counts the deliveries seen after the first one, including
	// this one.
	Duplicates int
	// FirstReceivedAt is when the first delivery of the window arrived.
	FirstReceivedAt time.Time
	// Status is the stored status: the new one when New, else the status the
	// first delivery left.
	Status Status
}

// Stored is an inbox record as operators see it.
type Stored struct {
	Source string // as in Event
	ID     string // the provider's event id, as received
	// StoredID is the id as stored and indexed: ID, or for an id over 200
	// bytes "sha256:" and its digest (what a message it caused holds as
	// CausedBy.EventID).
	StoredID       string
	BestEffort     bool              // as in Event: the id was derived from the body
	Type           string            // as in Event
	OccurredAt     *time.Time        // nil if the provider gave none
	SignedAt       *time.Time        // of the first delivery; nil if none
	ReceivedAt     time.Time         // when the first delivery arrived
	LastSeenAt     time.Time         // when the latest duplicate arrived
	ExpiresAt      time.Time         // after it a delivery of this id is new again
	DuplicateCount int               // deliveries after the first
	Status         Status            // where the event stands
	Reason         string            // why it was rejected, "" otherwise
	ProcessedAt    *time.Time        // nil until processed
	Payload        []byte            // the first delivery's body
	Headers        http.Header       // the first delivery's headers, credentials dropped
	Refs           map[string]string // search references, AddRefs' included
}
