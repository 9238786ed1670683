package console

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/httpheader"
	"github.com/outboxd/outboxd/outbox"
)

// refName is what a reference's name looks like in "name=value".
var refName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

// refQuery splits "name=value" when name looks like a reference name.
func refQuery(q string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(q, "=")
	if !ok || !refName.MatchString(name) || value == "" {
		return "", "", false
	}
	return name, value, true
}

// EventDetail is an event with what it led to.
type EventDetail struct {
	Event    inbox.Stored    `json:"event"`    // the stored event
	Failures []inbox.Failure `json:"failures"` // its failed receipts
	Messages []MessageRow    `json:"messages"` // the messages it caused
}

var errNotFound = errors.New("not found")

func (s *store) event(ctx context.Context, source, id string) (EventDetail, error) {
	ev, err := s.in.Get(ctx, s.pool, source, id)
	if errors.Is(err, inbox.ErrNotFound) {
		return EventDetail{}, errNotFound
	}
	if err != nil {
		return EventDetail{}, err
	}
	fails, err := s.in.Failures(ctx, s.pool, source, id, s.limit)
	if err != nil {
		return EventDetail{}, err
	}
	// By the event's original id, whichever form the page was reached by
	// (the message page links the stored key): the filter matches every
	// form a message may hold it in (internal/eventkey).
	msgs, err := s.messages(ctx, MessageFilter{CausedBy: &outbox.EventRef{Source: source, EventID: ev.ID}})
	if err != nil {
		return EventDetail{}, err
	}
	return EventDetail{Event: ev, Failures: fails, Messages: msgs}, nil
}

// MessageDetail is a message with its attempts and the actions taken on it.
type MessageDetail struct {
	Message  outbox.Stored    `json:"message"`  // the stored message
	Summary  MessageRow       `json:"summary"`  // its list row (retrying told apart)
	Attempts []outbox.Attempt `json:"attempts"` // its attempts, first first
	Audit    []AuditEntry     `json:"audit"`    // console actions that changed it
}

func (s *store) message(ctx context.Context, id uuid.UUID) (MessageDetail, error) {
	m, err := s.out.Get(ctx, s.pool, id)
	if errors.Is(err, outbox.ErrNotFound) {
		return MessageDetail{}, errNotFound
	}
	if err != nil {
		return MessageDetail{}, err
	}
	rows, err := s.messages(ctx, MessageFilter{IDs: []uuid.UUID{id}})
	if err != nil {
		return MessageDetail{}, err
	}
	if len(rows) != 1 {
		return MessageDetail{}, errNotFound // deleted in between
	}
	att, err := s.out.Attempts(ctx, s.pool, id)
	if err != nil {
		return MessageDetail{}, err
	}
	audit, err := s.auditFor(ctx, id)
	if err != nil {
		return MessageDetail{}, err
	}
	m.Headers = httpheader.Redacted(m.Headers)
	return MessageDetail{Message: m, Summary: rows[0], Attempts: att, Audit: audit}, nil
}

// wrapNotFound is for handlers: a missing row is a 404, not a 500.
func wrapNotFound(what string, err error) error {
	if errors.Is(err, errNotFound) {
		return fmt.Errorf("%s: %w", what, errNotFound)
	}
	return err
}

func errorsIsNotPaused(err error) bool { return errors.Is(err, outbox.ErrNotPaused) }
