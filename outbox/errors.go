package outbox

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidMessage is returned for a message that cannot be stored,
	// such as one without a destination.
	ErrInvalidMessage = errors.New("outbox: invalid message")
	// ErrUnstorable is an ErrInvalidMessage that the message's data
	// causes, not the code that builds it: a field over its bound
	// (ErrTooLong) or text PostgreSQL cannot store as given (a NUL byte or
	// invalid UTF-8, in a field or a header value). Unlike a missing
	// destination or a bad header name (the code's or the configuration's,
	// fixed by a deploy), the same data fails the same way on every
	// retry: the inbox's receiver answers it 422.
	ErrUnstorable = fmt.Errorf("%w: its data cannot be stored as given", ErrInvalidMessage)
	// ErrTooLong is an ErrUnstorable: a field longer than its index can
	// hold (see Message's limits), a payload over Config.MaxPayload, or
	// headers over 64 KiB as sent. Enqueue's error for it names the field
	// and its length and matches all three sentinels.
	ErrTooLong = fmt.Errorf("%w: a field is too long", ErrUnstorable)
	// ErrIDTaken is an ErrInvalidMessage: the message's id is another
	// stored message's, one with another idempotency key or another
	// destination (the same id with the same key is the same message:
	// Existing). Enqueue's error for it names the id and the other
	// message's destination; the caller's transaction goes on.
	ErrIDTaken = fmt.Errorf("%w: its id is another message's", ErrInvalidMessage)
	// ErrNotFound is returned when no message matches.
	ErrNotFound = errors.New("outbox: message not found")
	// ErrNotPaused is returned when resuming a destination that is not
	// paused.
	ErrNotPaused = errors.New("outbox: destination is not paused")
)

// tooLongError names the field over its limit and its length, never its
// value (it may be anything), and where the limit comes from (bound, may
// be empty). It is ErrTooLong, ErrUnstorable and ErrInvalidMessage.
type tooLongError struct {
	field  string
	n, max int
	bound  string
}

func (e *tooLongError) Error() string {
	msg := fmt.Sprintf("%s: %s is %d bytes, at most %d", ErrInvalidMessage, e.field, e.n, e.max)
	if e.bound != "" {
		msg += " (" + e.bound + ")"
	}
	return msg
}

func (e *tooLongError) Is(target error) bool {
	return target == ErrTooLong || target == ErrUnstorable || target == ErrInvalidMessage
}

// notTextError names a field (or header) whose text PostgreSQL cannot
// store as given, never quoting it. It is ErrUnstorable and
// ErrInvalidMessage.
type notTextError struct{ field string }

func (e *notTextError) Error() string {
	return fmt.Sprintf("%s: %s is not text PostgreSQL can store (a NUL byte or invalid UTF-8)", ErrInvalidMessage, e.field)
}

func (e *notTextError) Is(target error) bool {
	return target == ErrUnstorable || target == ErrInvalidMessage
}
