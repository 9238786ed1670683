package console

import "errors"

// ErrNoAuth is returned by New when the Config (a nil one included) names
// no user and does not set InsecureNoAuth: the console is never open by
// accident.
var ErrNoAuth = errors.New("console: Config.Users is required (at least one user, with a password or a token), or set Config.InsecureNoAuth for local use")

// errCountChanged means the dead letters a selection matches changed
// between the confirmation and the action (their number, or which they
// are): nothing was changed.
var errCountChanged = errors.New("the dead letters matching the selection changed since the confirmation; nothing was changed, confirm again")

// errForbidden is a refused action: 403 with its reason.
type errForbidden struct{ why string }

func (e errForbidden) Error() string { return e.why }
