package console

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/outboxd/outboxd/inbox"
)

// formTime reads a time bound: RFC 3339, a browser's datetime-local value
// (taken as UTC), or a duration meaning "ago" (2h, 30m), like the CLI's
// --since.
func formTime(name, v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%s: a negative duration", name)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s: want RFC 3339 (2026-01-02T15:04:05Z), a date, or a duration ago (2h)", name)
}

var eventStatuses = map[inbox.Status]bool{"": true, inbox.StatusReceived: true, inbox.StatusProcessed: true, inbox.StatusRejected: true}
var messageStatuses = map[MessageStatus]bool{"": true, MessageStatusPending: true, MessageStatusRetrying: true, MessageStatusDead: true, MessageStatusDelivered: true}

func eventFilter(q url.Values, now time.Time) (EventFilter, error) {
	f := EventFilter{Query: strings.TrimSpace(q.Get("q")), Source: q.Get("source"), Status: inbox.Status(q.Get("status")),
		BeforeSource: q.Get("before_source"), BeforeID: q.Get("before_id")}
	if !eventStatuses[f.Status] {
		return f, fmt.Errorf("status %q: want received, processed or rejected", f.Status)
	}
	var err error
	if f.Since, err = formTime("since", q.Get("since"), now); err != nil {
		return f, err
	}
	if f.Until, err = formTime("until", q.Get("until"), now); err != nil {
		return f, err
	}
	return f, checkWindow(f.Since, f.Until)
}

// checkWindow refuses a window that ends before it starts (which would
// match nothing, silently).
func checkWindow(since, until time.Time) error {
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return fmt.Errorf("since (%s) must be before until (%s)", since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	}
	return nil
}

func messageFilter(q url.Values, now time.Time) (MessageFilter, error) {
	f := MessageFilter{Destination: q.Get("destination"), Status: MessageStatus(q.Get("status")), OrderingKey: q.Get("ordering_key"),
		IdempotencyKey: strings.TrimSpace(q.Get("idempotency_key")), Type: q.Get("type")}
	if !messageStatuses[f.Status] {
		return f, fmt.Errorf("status %q: want pending, retrying, dead or delivered", f.Status)
	}
	if b := q.Get("before"); b != "" {
		id, err := uuid.Parse(b)
		if err != nil {
			return f, fmt.Errorf("before %q: not a message id", b)
		}
		f.Before = id
	}
	var err error
	if f.Since, err = formTime("since", q.Get("since"), now); err != nil {
		return f, err
	}
	if f.Until, err = formTime("until", q.Get("until"), now); err != nil {
		return f, err
	}
	return f, checkWindow(f.Since, f.Until)
}

// deadSelection reads a requeue or purge form: ticked ids, or a filter, or
// all=yes; expect is the count shown at confirmation.
func deadSelection(q url.Values, now time.Time) (DeadSelection, error) {
	var sel DeadSelection
	for _, s := range q["id"] {
		id, err := uuid.Parse(s)
		if err != nil {
			return sel, fmt.Errorf("id %q: not a message id", s)
		}
		sel.IDs = append(sel.IDs, id)
	}
	sel.Destination, sel.Type, sel.All = q.Get("destination"), q.Get("type"), q.Get("all") == "yes"
	sel.OrderingKey, sel.IdempotencyKey = q.Get("ordering_key"), strings.TrimSpace(q.Get("idempotency_key"))
	sel.Digest = q.Get("digest")
	var err error
	if sel.Since, err = formTime("since", q.Get("since"), now); err != nil {
		return sel, err
	}
	if sel.Until, err = formTime("until", q.Get("until"), now); err != nil {
		return sel, err
	}
	if err := checkWindow(sel.Since, sel.Until); err != nil {
		return sel, err
	}
	if e := q.Get("expect"); e != "" {
		var n int64
		if _, err := fmt.Sscan(e, &n); err != nil {
			return sel, fmt.Errorf("expect %q: not a count", e)
		}
		sel.Expect = &n
	}
	return sel, nil
}

// values writes a selection back as form fields, for the confirmation page
// (which adds expect and digest).
func (d DeadSelection) values() url.Values {
	v := url.Values{}
	for _, id := range d.IDs {
		v.Add("id", id.String())
	}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("destination", d.Destination)
	set("type", d.Type)
	set("ordering_key", d.OrderingKey)
	set("idempotency_key", d.IdempotencyKey)
	if !d.Since.IsZero() {
		v.Set("since", d.Since.UTC().Format(time.RFC3339Nano))
	}
	if !d.Until.IsZero() {
		v.Set("until", d.Until.UTC().Format(time.RFC3339Nano))
	}
	if d.All {
		v.Set("all", "yes")
	}
	return v
}
