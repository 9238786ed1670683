package main

import (
	"testing"
	"time"
)

// The numbers docs/configuration.md and docs/operations.md give for serve,
// each checked against the code: a changed constant fails here and sends
// its author to the docs.
func TestServeDocumentedNumbers(t *testing.T) {
	t.Parallel()
	ops, err := startOps(serveSettings{listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ops.close)
	for _, tc := range []struct {
		doc       string
		got, want any
	}{
		{"dispatcher.shutdown_timeout default 30s", shutdownTimeout(&fileConfig{}), 30 * time.Second},
		{"shutdown_timeout as given", shutdownTimeout(&fileConfig{Dispatcher: dispatcherConf{ShutdownTimeout: 3 * time.Second}}), 3 * time.Second},
		{"/readyz names what the start waits for after 5 s", slowStartAfter, 5 * time.Second},
		{"/readyz: PostgreSQL answers within 2 s", readyzPing, 2 * time.Second},
		{"ops port: request headers within 5 s", ops.srv.ReadHeaderTimeout, 5 * time.Second},
		{"ops port: the whole request within 10 s", ops.srv.ReadTimeout, 10 * time.Second},
		{"ops port: idle connections closed after 60 s", ops.srv.IdleTimeout, 60 * time.Second},
		{"CLI tables cut bodies at 4 KiB", maxShown, 4096},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: the code has %v", tc.doc, tc.got)
		}
	}
}
