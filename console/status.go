package console

// MessageStatus is a message's status as the console shows it: the
// outbox's statuses (outbox.Status), with a pending message that has
// failed since it was enqueued or requeued told apart as retrying. The
// strings are the API's (docs/operations.md).
type MessageStatus string

const (
	// MessageStatusPending is a message waiting, with no failed attempt
	// since it was enqueued or requeued.
	MessageStatusPending MessageStatus = "pending"
	// MessageStatusRetrying is a message waiting after a failed attempt.
	MessageStatusRetrying MessageStatus = "retrying"
	// MessageStatusDead is a dead-lettered message.
	MessageStatusDead MessageStatus = "dead"
	// MessageStatusDelivered is a message its destination accepted.
	MessageStatusDelivered MessageStatus = "delivered"
)

// Action is what an audited console action did. The strings are the
// audit table's and the API's.
type Action string

const (
	// ActionRequeue put dead letters back in line.
	ActionRequeue Action = "requeue"
	// ActionPurge deleted dead letters.
	ActionPurge Action = "purge"
	// ActionPause paused a destination.
	ActionPause Action = "pause"
	// ActionResume resumed a paused destination.
	ActionResume Action = "resume"
)
