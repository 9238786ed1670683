package worker_test

import (
	"strings"
	"testing"

	"github.com/outboxd/outboxd/internal/pgtest"
	"github.com/outboxd/outboxd/worker"
)

// A nil config is a config with nothing set: the error names the field a
// user must fill, never a panic nor "nil config".
func TestNewNamesTheRequiredDestinations(t *testing.T) {
	t.Parallel()
	pool := pgtest.Connect(t, pgtest.URL(t))
	for _, cfg := range []*worker.Config{nil, {}} {
		_, err := worker.New(pool, cfg)
		if err == nil || !strings.Contains(err.Error(), "Config.Destinations is required") {
			t.Errorf("New(pool, %+v): %v, want an error naming Config.Destinations", cfg, err)
		}
	}
}
