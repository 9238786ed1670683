package storm

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is what the demo ends with.
type Summary struct {
	Sources             map[string]map[string]int
	DedupeHitRate       float64
	P50, P99            time.Duration
	Contacts            int
	DealsByStage        map[string]int
	Tasks, Notes        int
	Sends               map[string]int // applied at the fake downstream, by path
	Messages            int            // in the outbox, all delivered
	Requests, Replays   int64
	RefusedDuringOutage int64
}

func (e *Env) waitDrained(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var pending, dead int
		err := e.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'dead') FROM outboxd.outbox_messages`).Scan(&pending, &dead)
		if err != nil {
			return err
		}
		if dead > 0 {
			return fmt.Errorf("invariant broken: %d outbox messages were dead-lettered", dead)
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("invariant broken: %d notifications still pending %s after the outage ended", pending, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// check reads the final state and compares it with the model.
func (e *Env) check(ctx context.Context, t *tally, m *model) (*Summary, error) {
	s := &Summary{Sources: t.bySource, DealsByStage: map[string]int{}, Sends: map[string]int{}}
	news, dups := 0, 0
	for _, c := range t.bySource {
		news += c["new"]
		dups += c["duplicate"]
	}
	if news+dups > 0 {
		s.DedupeHitRate = float64(dups) / float64(news+dups)
	}
	lat := slices.Clone(t.latencies)
	slices.Sort(lat)
	if len(lat) > 0 {
		s.P50, s.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	err := e.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM crm.contacts), (SELECT count(*) FROM crm.tasks),
		(SELECT count(*) FROM crm.notes), (SELECT count(*) FROM outboxd.outbox_messages)`).Scan(&s.Contacts, &s.Tasks, &s.Notes, &s.Messages)
	if err != nil {
		return nil, err
	}
	deals, err := e.CRM.Deals(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range deals {
		s.DealsByStage[d.Stage]++
	}
	sends := e.Downstream.Sends()
	for _, snd := range sends {
		s.Sends[snd.Path]++
	}
	s.Requests, s.Replays, s.RefusedDuringOutage = e.Downstream.Stats()

	// The invariants.
	if s.Contacts != len(m.emails) {
		return s, fmt.Errorf("invariant broken: %d contacts, want %d (one per distinct email)", s.Contacts, len(m.emails))
	}
	if len(deals) != len(m.stages) {
		return s, fmt.Errorf("invariant broken: %d deals, want %d (one per lead)", len(deals), len(m.stages))
	}
	for _, d := range deals {
		if want := m.stages[d.ID]; d.Stage != want {
			return s, fmt.Errorf("invariant broken: deal %s is %s, want %s", d.ID, d.Stage, want)
		}
		if d.Tasks != 1 {
			return s, fmt.Errorf("invariant broken: deal %s has %d tasks, want 1", d.ID, d.Tasks)
		}
	}
	wantEmails, wantChats := len(m.stages), m.chats
	if s.Sends["/email/send"] != wantEmails || s.Sends["/chat/post"] != wantChats {
		return s, fmt.Errorf("invariant broken: downstream applied %d welcome emails and %d chat messages, want %d and %d",
			s.Sends["/email/send"], s.Sends["/chat/post"], wantEmails, wantChats)
	}
	if s.Messages != wantEmails+wantChats {
		return s, fmt.Errorf("invariant broken: %d outbox messages, want %d", s.Messages, wantEmails+wantChats)
	}
	keys := map[string]bool{}
	for _, snd := range sends {
		if keys[snd.Path+snd.IdempotencyKey] {
			return s, fmt.Errorf("invariant broken: %s applied twice at the downstream", snd.IdempotencyKey)
		}
		keys[snd.Path+snd.IdempotencyKey] = true
	}
	if s.RefusedDuringOutage == 0 {
		return s, fmt.Errorf("invariant broken: the outage refused nothing, so it proved nothing")
	}
	return s, nil
}

// Print writes the summary for a person.
func (s *Summary) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "source\treceived\tnew\tduplicate\trejected (4xx)\tretry (5xx)\t")
	names := make([]string, 0, len(s.Sources))
	for n := range s.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := s.Sources[n]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", n, c["received"], c["new"], c["duplicate"], c["rejected"], c["failed"])
	}
	tw.Flush()
	stages := make([]string, 0, len(s.DealsByStage))
	for _, st := range []string{"new", "qualified", "meeting", "negotiation", "won", "lost"} {
		if n := s.DealsByStage[st]; n > 0 {
			stages = append(stages, fmt.Sprintf("%s %d", st, n))
		}
	}
	fmt.Fprintf(w, "\ndedupe hit rate    %.1f%% of verified deliveries were duplicates\n", 100*s.DedupeHitRate)
	fmt.Fprintf(w, "receipt latency    p50 %s, p99 %s (signed request to answer)\n", s.P50.Round(10*time.Microsecond), s.P99.Round(10*time.Microsecond))
	fmt.Fprintf(w, "contacts           %d (deduped on email)\n", s.Contacts)
	fmt.Fprintf(w, "deals by stage     %s\n", strings.Join(stages, ", "))
	fmt.Fprintf(w, "tasks, notes       %d, %d\n", s.Tasks, s.Notes)
	fmt.Fprintf(w, "notifications      %d welcome emails and %d sales-chat messages, each applied exactly once\n", s.Sends["/email/send"], s.Sends["/chat/post"])
	fmt.Fprintf(w, "downstream         %d requests: %d refused during the outage, %d repeats answered from the idempotency cache\n", s.Requests, s.RefusedDuringOutage, s.Replays)
}
