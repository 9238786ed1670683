package outbox

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidMessage is returned for a message that cannot be stored,
	// such as one without a destination.
	ErrInvalidMessage = errors.New("outbox: invalid message")
	// ErrTooLong is an ErrInvalidMessage whose field is longer than its
	// index can hold (see Message's limits). Unlike a missing destination
	// or a bad header, which are usually the code's or the
	// configuration's, it often comes from the data itself (an id or a
	// key from a payload): the inbox's receiver answers it 422.
	ErrTooLong = fmt.Errorf("%w: too long", ErrInvalidMessage)
	// ErrNotFound is returned when no message matches.
	ErrNotFound = errors.New("outbox: message not found")
	// ErrNotPaused is returned when resuming a destination that is not
	// paused.
	ErrNotPaused = errors.New("outbox: destination is not paused")
)
