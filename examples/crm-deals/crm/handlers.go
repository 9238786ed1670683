package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/outbox"
)

// Every state change below is a compare-and-swap: the UPDATE or INSERT says
// in its WHERE (or ON CONFLICT) what it expects, and side effects (tasks,
// messages) follow only when it applied. So a replayed or late event changes
// nothing twice, and an older event never rolls a deal back.

var reps = []string{"alice", "bob", "carol"}

// LeadEvent is the lead-form provider's payload (Standard Webhooks format).
type LeadEvent struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		LeadID string `json:"lead_id"`
		Email  string `json:"email"`
		Name   string `json:"name"`
		Phone  string `json:"phone"`
		Title  string `json:"deal_title"`
		Amount int64  `json:"amount"`
	} `json:"data"`
}

func (s *Service) onLead(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
	var ev LeadEvent
	if err := json.Unmarshal(d.Body, &ev); err != nil || ev.Data.LeadID == "" || !strings.Contains(ev.Data.Email, "@") {
		return inbox.Permanent(fmt.Errorf("lead event without a lead id or an email: %s", d.Body))
	}
	email := strings.ToLower(strings.TrimSpace(ev.Data.Email))
	// Contacts are deduped on email: a second lead of the same person
	// updates the contact instead of creating another.
	var contactID int64
	err := tx.QueryRow(ctx, `
INSERT INTO crm.contacts (email, name, phone) VALUES ($1, $2, $3)
ON CONFLICT (email) DO UPDATE SET name = excluded.name,
    phone = CASE WHEN excluded.phone <> '' THEN excluded.phone ELSE crm.contacts.phone END
RETURNING id`, email, ev.Data.Name, ev.Data.Phone).Scan(&contactID)
	if err != nil {
		return err
	}
	dealID := "deal-" + ev.Data.LeadID
	tag, err := tx.Exec(ctx, `
INSERT INTO crm.deals (id, contact_id, title, amount, stage_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO NOTHING`, dealID, contactID, ev.Data.Title, ev.Data.Amount, ev.Timestamp)
	if err != nil {
		return err
	}
	refs := map[string]string{"email": email, "contact_id": strconv.FormatInt(contactID, 10), "deal_id": dealID}
	if ev.Data.Phone != "" {
		refs["phone"] = ev.Data.Phone
	}
	if err := d.AddRefs(ctx, tx, refs); err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return nil // the deal exists (a replay after the dedupe window): nothing more
	}
	rep := reps[int(contactID)%len(reps)]
	if _, err := tx.Exec(ctx, `INSERT INTO crm.tasks (deal_id, assignee, title) VALUES ($1, $2, $3)`,
		dealID, rep, "Call "+ev.Data.Name+" about "+ev.Data.Title); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"to": email, "template": "welcome", "name": ev.Data.Name, "rep": rep})
	_, err = s.outbox.Enqueue(ctx, tx, outbox.Message{
		Destination: EmailAPI, Type: "email.welcome", OrderingKey: "contact-" + strconv.FormatInt(contactID, 10),
		Payload: body, CausedBy: &outbox.EventRef{Source: d.Source, EventID: d.ID},
	})
	return err
}

// PaymentEvent is the payments provider's payload (Stripe format).
type PaymentEvent struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Created int64  `json:"created"`
	Data    struct {
		Object struct {
			ID       string            `json:"id"`
			Amount   int64             `json:"amount"`
			Metadata map[string]string `json:"metadata"`
		} `json:"object"`
	} `json:"data"`
}

// errUnknownDeal: an event for a deal that does not exist yet (its lead may
// still be on its way): transient, so the sender retries.
var errUnknownDeal = errors.New("deal not found yet")

func (s *Service) onPayment(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
	var ev PaymentEvent
	if err := json.Unmarshal(d.Body, &ev); err != nil {
		return inbox.Permanent(err)
	}
	if ev.Type != "payment_intent.succeeded" {
		return nil // not an event this CRM acts on; recorded, answered 200
	}
	dealID := ev.Data.Object.Metadata["deal_id"]
	if dealID == "" {
		return inbox.Permanent(errors.New("payment without metadata.deal_id"))
	}
	at := time.Unix(ev.Created, 0)
	var contactID int64
	err := tx.QueryRow(ctx, `
UPDATE crm.deals SET stage = 'won', won_at = $2, stage_at = $2, amount = $3
WHERE id = $1 AND stage NOT IN ('won', 'lost')
RETURNING contact_id`, dealID, at, ev.Data.Object.Amount).Scan(&contactID)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.requireDeal(ctx, tx, dealID)
	}
	if err != nil {
		return err
	}
	if err := s.note(ctx, tx, dealID, fmt.Sprintf("Payment %s of %d received: deal won", ev.Data.Object.ID, ev.Data.Object.Amount)); err != nil {
		return err
	}
	return s.chat(ctx, tx, d, dealID, "deal.won", fmt.Sprintf("Deal %s won (%d)", dealID, ev.Data.Object.Amount))
}

// CalendarEvent is the calendar/dialer's payload (generic HMAC source).
type CalendarEvent struct {
	EventID    string    `json:"event_id"`
	Kind       string    `json:"kind"`
	DealID     string    `json:"deal_id"`
	OccurredAt time.Time `json:"occurred_at"`
	Summary    string    `json:"summary"`
}

func (s *Service) onCalendar(ctx context.Context, tx pgx.Tx, d *inbox.Delivery) error {
	var ev CalendarEvent
	if err := json.Unmarshal(d.Body, &ev); err != nil || ev.DealID == "" || ev.OccurredAt.IsZero() {
		return inbox.Permanent(fmt.Errorf("calendar event without deal_id or occurred_at: %s", d.Body))
	}
	if err := s.requireDeal(ctx, tx, ev.DealID); err != nil {
		return err
	}
	var to string
	var from []string
	switch ev.Kind {
	case "call.logged":
		to, from = "qualified", []string{"new"}
	case "meeting.booked":
		to, from = "meeting", []string{"new", "qualified"}
	default:
		return inbox.Permanent(fmt.Errorf("unknown calendar event kind %q", ev.Kind))
	}
	if err := s.note(ctx, tx, ev.DealID, ev.Kind+": "+ev.Summary); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `
UPDATE crm.deals SET stage = $2, stage_at = $3
WHERE id = $1 AND stage = ANY($4) AND (stage_at IS NULL OR stage_at < $3)`, ev.DealID, to, ev.OccurredAt, from)
	if err != nil || tag.RowsAffected() == 0 {
		return err // an older event, or the deal moved on: no stage change, no message
	}
	if ev.Kind == "meeting.booked" {
		return s.chat(ctx, tx, d, ev.DealID, "meeting.booked", "Meeting booked for "+ev.DealID+": "+ev.Summary)
	}
	return nil
}

func (s *Service) requireDeal(ctx context.Context, tx pgx.Tx, dealID string) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM crm.deals WHERE id = $1)`, dealID).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return inbox.Transient(fmt.Errorf("%w: %s", errUnknownDeal, dealID))
	}
	return nil
}

func (s *Service) note(ctx context.Context, tx pgx.Tx, dealID, body string) error {
	_, err := tx.Exec(ctx, `INSERT INTO crm.notes (deal_id, body) VALUES ($1, $2)`, dealID, body)
	return err
}

func (s *Service) chat(ctx context.Context, tx pgx.Tx, d *inbox.Delivery, dealID, typ, text string) error {
	body, _ := json.Marshal(map[string]string{"channel": "#sales", "text": text, "deal_id": dealID})
	_, err := s.outbox.Enqueue(ctx, tx, outbox.Message{
		Destination: SalesChat, Type: typ, OrderingKey: dealID, Payload: body,
		CausedBy: &outbox.EventRef{Source: d.Source, EventID: d.ID},
	})
	return err
}
