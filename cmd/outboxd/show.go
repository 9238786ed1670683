package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/outboxd/outboxd/inbox"
	"github.com/outboxd/outboxd/internal/httpheader"
	"github.com/outboxd/outboxd/outbox"
)

// maxShown caps a payload or response body printed by the show commands, so
// one huge message does not flood a terminal.
const maxShown = 4096

// printMessage prints a message as stored, and its attempts.
func printMessage(out io.Writer, m outbox.Stored, attempts []outbox.Attempt) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(w, "%s\t%s\n", k, safeLine(v)) }
	row("id", m.ID.String())
	row("destination", m.Destination)
	row("type", m.Type)
	row("status", string(m.Status))
	row("idempotency key", m.IdempotencyKey)
	if m.OrderingKey != "" {
		row("ordering key", m.OrderingKey)
		row("seq", strconv.FormatInt(m.Seq, 10))
	} else {
		// Not "seq 0": an unkeyed message has no place in any order
		// (--json gives null).
		row("ordering key", "(none: unordered)")
	}
	if m.CausedBy != nil {
		row("caused by", m.CausedBy.Source+" "+m.CausedBy.EventID)
	}
	row("created", m.CreatedAt.UTC().Format(time.RFC3339Nano))
	row("attempts", strconv.Itoa(m.Attempts))
	// Only a pending message has a next attempt; for the others the
	// stored time means nothing.
	if m.Status == outbox.StatusPending {
		row("next attempt", m.NextAttemptAt.UTC().Format(time.RFC3339Nano))
	}
	if m.DeliveredAt != nil {
		row("delivered", m.DeliveredAt.UTC().Format(time.RFC3339Nano))
	}
	if m.LastError != "" {
		row("last error", m.LastError)
	}
	printHeaders(w, m.Headers)
	w.Flush()
	// Bodies go around the tables: their own tabs must not shift columns.
	fmt.Fprintf(out, "payload\n%s\n", indent(shown(m.Payload)))

	fmt.Fprintln(w, "\nATTEMPT\tAT\tDURATION\tOUTCOME\tSTATUS\tERROR")
	for _, a := range attempts {
		code := "-"
		if a.StatusCode != nil {
			code = strconv.Itoa(*a.StatusCode)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", a.Number, a.At.UTC().Format(time.RFC3339Nano), a.Duration.Round(time.Microsecond), safeLine(string(a.Outcome)), code, safeLine(a.Error))
	}
	w.Flush()
	for _, a := range attempts {
		if a.ResponseBody != "" {
			fmt.Fprintf(out, "\nresponse body of attempt %d\n%s\n", a.Number, indent(shown([]byte(a.ResponseBody))))
		}
	}
}

// printEvent prints a received event as stored.
func printEvent(out io.Writer, ev inbox.Stored) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(w, "%s\t%s\n", k, safeLine(v)) }
	row("source", ev.Source)
	row("event id", ev.ID)
	row("best-effort id", strconv.FormatBool(ev.BestEffort))
	row("type", ev.Type)
	row("status", strings.TrimSpace(string(ev.Status)+" "+ev.Reason))
	if ev.OccurredAt != nil {
		row("occurred", ev.OccurredAt.UTC().Format(time.RFC3339Nano))
	}
	row("received", ev.ReceivedAt.UTC().Format(time.RFC3339Nano))
	row("last seen", ev.LastSeenAt.UTC().Format(time.RFC3339Nano))
	row("duplicates", strconv.Itoa(ev.DuplicateCount))
	row("expires", ev.ExpiresAt.UTC().Format(time.RFC3339))
	row("refs", formatRefs(ev.Refs))
	printHeaders(w, ev.Headers)
	w.Flush()
	fmt.Fprintf(out, "payload\n%s\n", indent(shown(ev.Payload)))
}

// formatRefs prints references as key=value, sorted by key.
func formatRefs(refs map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(refs)) {
		parts = append(parts, k+"="+refs[k])
	}
	return strings.Join(parts, " ")
}

// printHeaders prints h, the values of credentials redacted: outbox
// headers are the producer's, and may carry an API key.
func printHeaders(w io.Writer, h http.Header) {
	h = httpheader.Redacted(h)
	for _, k := range slices.Sorted(maps.Keys(h)) {
		fmt.Fprintf(w, "header\t%s: %s\n", safeLine(k), safeLine(strings.Join(h[k], ", ")))
	}
}

// shown is a body as people read it: JSON indented, anything else as
// text, cut at maxShown bytes with a note of what was left out, and
// control characters and invalid UTF-8 escaped either way.
func shown(b []byte) string {
	return safeText(shownRaw(b))
}

func shownRaw(b []byte) string {
	if len(b) == 0 {
		return "(empty)"
	}
	var buf bytes.Buffer
	if json.Valid(b) && json.Indent(&buf, b, "", "  ") == nil {
		b = buf.Bytes()
	}
	if len(b) <= maxShown {
		return strings.TrimRight(string(b), "\n")
	}
	return fmt.Sprintf("%s\n... (%d more bytes)", b[:maxShown], len(b)-maxShown)
}

// indent sets a block apart from the table it follows.
func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
