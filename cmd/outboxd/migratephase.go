package main

import (
	"context"
	"log/slog"
	"strings"
)

// migrationPhase passes every record on to the log and shows the
// migrations' own lines (a wait for another run's lock, a concurrent
// index build and what it waits for) in /readyz while serve --migrate
// applies them: an operator whose rollout hangs there sees why without
// reading the log. Only the attributes that name what is waited for are
// shown (never the sessions' application names: /readyz needs no
// credentials).
type migrationPhase struct {
	slog.Handler
	ops *opsServer
}

// phaseAttrs are the attributes a migration line shows in /readyz.
var phaseAttrs = map[string]bool{"backend_pid": true, "index": true, "table": true, "step": true}

func (h migrationPhase) Handle(ctx context.Context, r slog.Record) error {
	fromGoose := false
	var detail []string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "logger" && a.Value.String() == "goose" {
			fromGoose = true
		}
		if phaseAttrs[a.Key] {
			detail = append(detail, a.Key+" "+a.Value.String())
		}
		return true
	})
	if !fromGoose && r.Level >= slog.LevelInfo {
		phase := "applying migrations; last: " + r.Message
		if len(detail) > 0 {
			phase += " (" + strings.Join(detail, ", ") + ")"
		}
		h.ops.starting(phase)
	}
	return h.Handler.Handle(ctx, r)
}

func (h migrationPhase) WithAttrs(as []slog.Attr) slog.Handler {
	return migrationPhase{h.Handler.WithAttrs(as), h.ops}
}

func (h migrationPhase) WithGroup(name string) slog.Handler {
	return migrationPhase{h.Handler.WithGroup(name), h.ops}
}
