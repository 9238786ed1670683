package outbox

import "errors"

var (
	// ErrInvalidMessage is returned for a message that cannot be stored,
	// such as one without a destination.
	ErrInvalidMessage = errors.New("outbox: invalid message")
	// ErrNotFound is returned when no message matches.
	ErrNotFound = errors.New("outbox: message not found")
	// ErrNotPaused is returned when resuming a destination that is not
	// paused.
	ErrNotPaused = errors.New("outbox: destination is not paused")
)
