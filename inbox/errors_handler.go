package inbox

import "errors"

// permanentError marks a handler error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// transientError marks a handler error worth retrying.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the receiver answers 422 (the sender
// must not retry) and records the event as rejected, so a retry is a
// duplicate. Use it for payloads that will never make sense, or entities
// that will never exist.
func Permanent(err error) error {
	if err == nil { // still a refusal, not a panic when it is printed
		err = errors.New("refused by the handler")
	}
	return &permanentError{err: err}
}

// Transient marks err as worth retrying: the receiver answers 503 with
// Retry-After, and nothing of the attempt stays. Unmarked handler errors are
// treated as transient too, but for PostgreSQL data exceptions (class 22),
// program limits (54000) and outbox.ErrUnstorable, which no retry fixes (see
// HandlerFunc); Transient overrides that.
func Transient(err error) error {
	if err == nil { // still a retry, not a panic when it is printed
		err = errors.New("retry asked by the handler")
	}
	return &transientError{err: err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
