package main

import (
	"log/slog"

	"github.com/outboxd/outboxd/internal/pg"
	"github.com/outboxd/outboxd/internal/redact"
)

// redactAttr is a slog ReplaceAttr that redacts strings and errors (no
// password or token reaches the logs, whatever library wrote it), and
// writes durations as people read them ("30s", not nanoseconds).
func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(redact.Secrets(a.Value.String()))
	case slog.KindDuration:
		a.Value = slog.StringValue(a.Value.Duration().String())
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			// A failed connection in one line, without sslmode=prefer's
			// refused TLS attempt (it led every such line: a trial's).
			a.Value = slog.StringValue(redact.Secrets(pg.DescribeConnectError(err)))
		}
	case slog.KindBool, slog.KindFloat64, slog.KindInt64, slog.KindUint64, slog.KindTime:
		// nothing that could hold a secret
	case slog.KindGroup, slog.KindLogValuer:
		// never seen here: slog calls ReplaceAttr on each member of a group,
		// with its value resolved
	}
	return a
}
