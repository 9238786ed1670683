package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

// pageFunc renders a page, or returns an error for page() to show.
type pageFunc func(w http.ResponseWriter, r *http.Request) error

// userError is a mistake in the request (a bad filter): 400 with its text.
type userError struct{ msg string }

func (e userError) Error() string { return e.msg }

func badRequest(err error) error { return userError{msg: err.Error()} }

// page shows an error as a page: 404 for a missing row, 400 for a bad
// request, 409 for a count that changed, else 500 without the details
// (logged).
func (c *Console) page(fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		code, msg := c.classify(r, err)
		c.render(w, r, code, "error", view{Title: http.StatusText(code), Error: msg})
	}
}

func (c *Console) classify(r *http.Request, err error) (int, string) {
	var ue userError
	var fe errForbidden
	switch {
	case errors.As(err, &fe):
		return http.StatusForbidden, fe.why
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, err.Error()
	case errors.As(err, &ue):
		return http.StatusBadRequest, ue.msg
	case errors.Is(err, errCountChanged):
		return http.StatusConflict, err.Error()
	case badText(err):
		return http.StatusBadRequest, "a value holds a NUL byte or is not valid UTF-8"
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away: nobody reads the answer, nothing to log.
		return http.StatusServiceUnavailable, errUnavailable
	case retryable(err):
		return http.StatusConflict, "another change got in the way (deadlock or serialization failure); nothing was changed, try again"
	case unavailable(err):
		c.log.Warn("console: database unavailable", "path", r.URL.Path, "error", err)
		if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/dead/") {
			return http.StatusServiceUnavailable, errActionUnfinished
		}
		return http.StatusServiceUnavailable, errUnavailable
	}
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42501" {
		// The role's grants, not the database's health: say where they are.
		c.log.Error(`console: the database refuses outboxd's role a privilege (docs/operations.md, "Roles and grants")`, "path", r.URL.Path, "error", err)
		return http.StatusInternalServerError, `the database refuses outboxd's role a privilege this needs (docs/operations.md, "Roles and grants"); see the outboxd log`
	}
	c.log.Error("console: request failed", "path", r.URL.Path, "error", err)
	return http.StatusInternalServerError, "the database query failed; see the outboxd log"
}

func (c *Console) eventsPage(w http.ResponseWriter, r *http.Request) error {
	f, err := eventFilter(r.URL.Query(), time.Now())
	if err != nil {
		return badRequest(err)
	}
	rows, err := c.store.events(r.Context(), f)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "events", view{Title: "Events", Nav: "events", Data: map[string]any{"Filter": f, "Rows": rows, "Limit": c.cfg.PageSize}})
	return nil
}

func (c *Console) eventPage(w http.ResponseWriter, r *http.Request) error {
	d, err := c.store.event(r.Context(), r.PathValue("source"), r.PathValue("id"))
	if err != nil {
		return wrapNotFound("event", err)
	}
	c.render(w, r, http.StatusOK, "event", view{Title: "Event " + d.Event.ID, Nav: "events", Data: map[string]any{
		"D": d, "Payload": show(d.Event.Payload, c.cfg.MaxShown)}})
	return nil
}

func (c *Console) messagesPage(w http.ResponseWriter, r *http.Request) error {
	f, err := messageFilter(r.URL.Query(), time.Now())
	if err != nil {
		return badRequest(err)
	}
	rows, err := c.store.messages(r.Context(), f)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "messages", view{Title: "Messages", Nav: "messages", Data: map[string]any{"Filter": f, "Rows": rows, "Limit": c.cfg.PageSize}})
	return nil
}

func (c *Console) messagePage(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return badRequest(fmt.Errorf("%q is not a message id", r.PathValue("id")))
	}
	d, err := c.store.message(r.Context(), id)
	if err != nil {
		return wrapNotFound("message", err)
	}
	bodies := make([]shown, len(d.Attempts))
	for i, a := range d.Attempts {
		bodies[i] = show([]byte(a.ResponseBody), c.cfg.MaxShown)
	}
	c.render(w, r, http.StatusOK, "message", view{Title: "Message " + id.String(), Nav: "messages", Data: map[string]any{
		"D": d, "Payload": show(d.Message.Payload, c.cfg.MaxShown), "Bodies": bodies, "AuditIDs": c.cfg.AuditIDs}})
	return nil
}

func (c *Console) deadPage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	q.Set("status", "dead")
	f, err := messageFilter(q, time.Now())
	if err != nil {
		return badRequest(err)
	}
	rows, err := c.store.messages(r.Context(), f)
	if err != nil {
		return err
	}
	audit, err := c.store.auditRecent(r.Context())
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "dead", view{Title: "Dead letters", Nav: "dead", Data: map[string]any{
		"Filter": f, "Rows": rows, "Audit": audit, "Limit": c.cfg.PageSize, "AuditIDs": c.cfg.AuditIDs}})
	return nil
}

// deadConfirmPage shows how many dead letters an action will touch, and
// asks again; nothing changes yet.
func (c *Console) deadConfirmPage(w http.ResponseWriter, r *http.Request) error {
	action := r.PostFormValue("action")
	if action != "requeue" && action != "purge" {
		return badRequest(fmt.Errorf("action %q: want requeue or purge", action))
	}
	if err := r.ParseForm(); err != nil {
		return badRequest(err)
	}
	sel, err := deadSelection(r.PostForm, time.Now())
	if err != nil {
		return badRequest(err)
	}
	if sel.empty() {
		return badRequest(errors.New("nothing selected: tick messages, give a filter, or choose all dead letters"))
	}
	// Pin the end of the creation window now: a message created after
	// this page was shown is never part of what was confirmed.
	if sel.Until.IsZero() {
		sel.Until = time.Now().UTC()
	}
	n, digest, err := c.store.deadNow(r.Context(), sel)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "confirm", view{Title: "Confirm " + action, Nav: "dead", Data: map[string]any{
		"Action": action, "Count": n, "Fields": sel.values(), "Sel": sel, "Digest": digest}})
	return nil
}

func (c *Console) deadActionPage(w http.ResponseWriter, r *http.Request) error {
	action := r.PathValue("action")
	if action != "requeue" && action != "purge" {
		return errNotFound
	}
	if err := r.ParseForm(); err != nil {
		return badRequest(err)
	}
	sel, err := deadSelection(r.PostForm, time.Now())
	if err != nil {
		return badRequest(err)
	}
	if sel.empty() || sel.Expect == nil || sel.Digest == "" {
		return badRequest(errors.New("confirm first: the action needs what the confirmation page showed"))
	}
	n, err := c.store.changeDead(r.Context(), principalOf(r.Context()), action, sel, c.cfg.AuditIDs)
	if err != nil {
		return err
	}
	verb := map[string]string{"requeue": "requeued", "purge": "purged"}[action]
	c.render(w, r, http.StatusOK, "done", view{Title: "Done", Nav: "dead", Data: map[string]any{
		"Text": fmt.Sprintf("%d dead letter(s) %s.", n, verb), "IDs": sel.IDs, "Back": "/dead"}})
	return nil
}

func (c *Console) destinationsPage(w http.ResponseWriter, r *http.Request) error {
	d, err := c.store.destinations(r.Context())
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "destinations", view{Title: "Destinations", Nav: "destinations", Data: d})
	return nil
}

func (c *Console) pauseActionPage(w http.ResponseWriter, r *http.Request) error {
	name, action := r.PathValue("name"), r.PathValue("action")
	if action != "pause" && action != "resume" {
		return errNotFound
	}
	changed, err := c.store.setPaused(r.Context(), principalOf(r.Context()), name, action == "pause", r.PostFormValue("reason"))
	if err != nil {
		return err
	}
	text := fmt.Sprintf("Destination %s %sd. Dispatchers take it up when they next reread the paused destinations (each time they renew their leases): a delivery already under way finishes.", name, action)
	if !changed {
		text = fmt.Sprintf("Destination %s was already %s; nothing changed.", name, map[string]string{"pause": "paused", "resume": "running"}[action])
	}
	c.render(w, r, http.StatusOK, "done", view{Title: "Done", Nav: "destinations", Data: map[string]any{"Text": text, "Back": "/destinations"}})
	return nil
}

func (c *Console) failuresPage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f, err := c.store.failures(r.Context(), q.Get("source"), q.Get("kind"))
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "failures", view{Title: "Failures", Nav: "failures", Data: f})
	return nil
}
