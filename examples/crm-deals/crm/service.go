package crm

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/inbox/verify"
	"github.com/outboxd/outboxd/outbox"
)

// Secrets are the signing secrets of the three senders.
type Secrets struct {
	// Forms is the lead-form provider's Standard Webhooks secret (whsec_...).
	Forms string
	// Payments is the payments provider's Stripe-format secret.
	Payments string
	// Calendar is the calendar/dialer's HMAC secret (generic source).
	Calendar string
	// API is the bearer token of the read API (GET /deals lists every
	// deal with its contact's email). Empty: the read API is off.
	API string
}

// Destinations the service sends to through the outbox.
const (
	EmailAPI  = "email-api"
	SalesChat = "sales-chat"
)

// Service is the CRM: its webhook receiver and a small read API.
type Service struct {
	pool     *pgxpool.Pool
	inbox    *inbox.Inbox
	outbox   *outbox.Outbox
	receiver *inbox.Receiver
	mux      *http.ServeMux
	apiToken string
}

// New builds the service on pool (migrated with outboxd's migrations and
// Migrate). reg receives the receiver's metrics (nil: none).
func New(pool *pgxpool.Pool, secrets Secrets, reg prometheus.Registerer, log *slog.Logger) (*Service, error) {
	in, err := inbox.New(nil)
	if err != nil {
		return nil, err
	}
	ob, err := outbox.New(nil)
	if err != nil {
		return nil, err
	}
	s := &Service{pool: pool, inbox: in, outbox: ob, mux: http.NewServeMux(), apiToken: secrets.API}
	forms, err := verify.StandardWebhooks(secrets.Forms)
	if err != nil {
		return nil, err
	}
	payments, err := verify.Stripe(secrets.Payments)
	if err != nil {
		return nil, err
	}
	calendar, err := verify.HMAC(&verify.HMACConfig{
		Header: "X-Calendar-Signature", Prefix: "sha256=", TimestampHeader: "X-Calendar-Timestamp",
		IDField: "event_id", TypeField: "kind", Secrets: []string{secrets.Calendar},
	})
	if err != nil {
		return nil, err
	}
	var metrics *inbox.Metrics
	if reg != nil {
		if metrics, err = inbox.NewMetrics(reg); err != nil {
			return nil, err
		}
	}
	s.receiver, err = inbox.NewReceiver(pool, in, &inbox.ReceiverConfig{
		Sources: []inbox.Source{
			{Name: "forms", Verifier: forms, Handle: s.onLead},
			{Name: "payments", Verifier: payments, Handle: s.onPayment},
			{Name: "calendar", Verifier: calendar, Handle: s.onCalendar},
		},
		Metrics: metrics, Logger: log, RetryAfter: time.Second,
		// Requests in flight, body reading included: beyond, senders get
		// 503 and retry, instead of piling up behind slow ones.
		MaxConcurrent: 64,
	})
	if err != nil {
		return nil, err
	}
	s.mux.Handle("POST /webhooks/{source}", s.receiver)
	s.mux.HandleFunc("GET /deals", s.listDeals)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return s, nil
}

// ServeHTTP serves the webhooks (POST /webhooks/{forms,payments,calendar})
// and the read API (GET /deals).
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Deal is a deal as the API shows it.
type Deal struct {
	ID      string     `json:"id"`
	Title   string     `json:"title"`
	Email   string     `json:"email"`
	Stage   string     `json:"stage"`
	StageAt *time.Time `json:"stage_at"`
	Amount  int64      `json:"amount"`
	Tasks   int        `json:"tasks"`
	Notes   int        `json:"notes"`
}

// Deals lists every deal.
func (s *Service) Deals(ctx context.Context) ([]Deal, error) {
	rows, err := s.pool.Query(ctx, `
SELECT d.id, d.title, c.email, d.stage, d.stage_at, d.amount,
       (SELECT count(*) FROM crm.tasks t WHERE t.deal_id = d.id),
       (SELECT count(*) FROM crm.notes n WHERE n.deal_id = d.id)
FROM crm.deals d JOIN crm.contacts c ON c.id = d.contact_id
ORDER BY d.id`)
	if err != nil {
		return nil, fmt.Errorf("crm: deals: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Deal])
}

func (s *Service) listDeals(w http.ResponseWriter, r *http.Request) {
	// Contacts' emails are personal data: only holders of the token read
	// them, compared in constant time.
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s.apiToken == "" || !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.apiToken)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="crm"`)
		http.Error(w, "a bearer token is required (CRM_API_TOKEN)", http.StatusUnauthorized)
		return
	}
	deals, err := s.Deals(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(deals)
}
