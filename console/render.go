package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/outboxd/outboxd/internal/httpheader"
)

var pageNames = []string{"events", "event", "messages", "message", "dead", "confirm", "done", "destinations", "failures", "error"}

func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "-"
			}
			return v.UTC().Format("2006-01-02 15:04:05.000 UTC")
		case *time.Time:
			if v == nil {
				return "-"
			}
			return v.UTC().Format("2006-01-02 15:04:05.000 UTC")
		}
		return "-"
	},
	"ago": func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return time.Since(*t).Round(time.Second).String()
	},
	"list":    func(s ...string) []string { return s },
	"ms":      func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) },
	"pct":     func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	"seg":     url.PathEscape,
	"code":    func(c *int) string { return map[bool]string{true: "-", false: fmt.Sprint(deref(c))}[c == nil] },
	"sorted":  sortedKeys,
	"headers": func(h http.Header) [][2]string { return headerRows(httpheader.Redacted(h)) },
	"lanes":   laneRanges,
	"older":   older,
	"sub":     func(a, b int) int { return a - b },
}

func deref(c *int) int {
	if c == nil {
		return 0
	}
	return *c
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func headerRows(h http.Header) [][2]string {
	var out [][2]string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, [2]string{k, v})
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// shown is a body as a page shows it: JSON indented, anything else as
// text with invalid UTF-8 replaced, cut at max bytes (html/template
// escapes the rest).
type shown struct {
	Text      string
	Size      int
	Truncated bool
}

func show(b []byte, max int) shown {
	s := shown{Size: len(b)}
	// Indent only what will be shown whole: indenting a body of many
	// megabytes to show its first 64 KiB would cost the whole of it.
	if len(b) <= max && json.Valid(b) {
		var buf bytes.Buffer
		if json.Indent(&buf, b, "", "  ") == nil {
			b = buf.Bytes()
		}
	}
	if len(b) > max {
		// A character cut in two becomes U+FFFD below.
		b, s.Truncated = b[:max], true
	}
	s.Text = strings.ToValidUTF8(string(b), "\uFFFD")
	return s
}

// view is what every page template gets.
type view struct {
	Title string
	Nav   string
	User  principal
	CSRF  string
	Error string
	Data  any
	Query url.Values
	// RiverUI is whether River UI is mounted (linked for admins).
	RiverUI bool
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, v view) {
	v.User = principalOf(r.Context())
	v.CSRF = c.csrf.token(v.User)
	v.Query = r.URL.Query()
	v.RiverUI = c.cfg.RiverUI != nil
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.log.Error("console: render", "page", name, "error", err)
		http.Error(w, "500 internal error: the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// laneRanges writes sorted lanes as ranges: [0 1 2 3 7] is "0-3, 7".
func laneRanges(l []int) string {
	var parts []string
	for i := 0; i < len(l); {
		j := i
		for j+1 < len(l) && l[j+1] == l[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", l[i], l[j]))
		} else {
			parts = append(parts, fmt.Sprint(l[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// older is the query of a list's next page, newest first: the same
// filters, continued after the last row shown (an EventRow or a
// MessageRow).
func older(path string, q url.Values, last any) template.URL {
	next := url.Values{}
	for k, v := range q {
		next[k] = v
	}
	switch r := last.(type) {
	case EventRow:
		next.Set("until", r.ReceivedAt.UTC().Format(time.RFC3339Nano))
		next.Set("before_source", r.Source)
		next.Set("before_id", r.Cursor)
	case MessageRow:
		next.Set("until", r.CreatedAt.UTC().Format(time.RFC3339Nano))
		next.Set("before", r.ID.String())
	}
	// Built from url.Values, so safe as a whole URL.
	return template.URL(path + "?" + next.Encode()) //nolint:gosec // encoded by url.Values above
}
