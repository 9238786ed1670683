package outbox

// Status is where a message stands. The strings are those of the status
// column, the CLI and the console API.
type Status string

const (
	// StatusPending is a message waiting for a delivery, or for a retry
	// after a failed attempt.
	StatusPending Status = "pending"
	// StatusDelivered is a message its destination accepted.
	StatusDelivered Status = "delivered"
	// StatusDead is a dead-lettered message (a permanent failure, or out
	// of attempts or age); Requeue puts it back in line.
	StatusDead Status = "dead"
)

// Outcome is what one recorded attempt came to. The first four are the
// dispatch package's outcomes (dispatch.Outcome) by the same strings;
// OutcomeAbandoned is the dispatcher's own.
type Outcome string

const (
	// OutcomeDelivered means the destination accepted the message.
	OutcomeDelivered Outcome = "delivered"
	// OutcomeRetry means a transient failure: the message is tried again.
	OutcomeRetry Outcome = "retry"
	// OutcomeDead means the attempt dead-lettered the message: a permanent
	// failure, or a transient one that used up the retry policy (its
	// MaxAttempts or MaxAge; the attempt's error and status say which).
	OutcomeDead Outcome = "dead"
	// OutcomePause means the destination is gone (HTTP 410) and was
	// paused; the message stays pending.
	OutcomePause Outcome = "pause"
	// OutcomeAbandoned means the attempt was cut off (the dispatcher
	// stopping, or its lease running out); it does not count against the
	// message's retries, and the message is sent again.
	OutcomeAbandoned Outcome = "abandoned"
)
