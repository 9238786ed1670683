package outbox

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidMessage is returned for a message that cannot be stored,
	// such as one without a destination.
	ErrInvalidMessage = errors.New("outbox: invalid message")
	// ErrTooLong is an ErrInvalidMessage: a field longer than its index
	// can hold (see Message's limits). Enqueue's error for it names the
	// field and its length and matches both. Unlike a missing destination
	// or a bad header (usually the code's or the configuration's), it
	// often comes from the data itself, an id or a key from a payload: the
	// inbox's receiver answers it 422.
	ErrTooLong = fmt.Errorf("%w: a field is too long", ErrInvalidMessage)
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
// value (it may be anything). It is both ErrTooLong and ErrInvalidMessage.
type tooLongError struct {
	field  string
	n, max int
}

func (e *tooLongError) Error() string {
	return fmt.Sprintf("%s: %s is %d bytes, at most %d", ErrInvalidMessage, e.field, e.n, e.max)
}

func (e *tooLongError) Is(target error) bool {
	return target == ErrTooLong || target == ErrInvalidMessage
}
