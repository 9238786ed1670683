package inbox

import "errors"

var (
	// ErrInvalidEvent is returned when an Event lacks its source or id.
	ErrInvalidEvent = errors.New("inbox: invalid event")
	// ErrNotFound is returned when no event has the given source and id.
	ErrNotFound = errors.New("inbox: event not found")
	// ErrUnknownSource is wrapped by Receiver.For when the receiver has no
	// source of that name.
	ErrUnknownSource = errors.New("inbox: unknown source")
)
