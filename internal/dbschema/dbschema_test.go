package dbschema

import (
	"strings"
	"testing"
)

// Library users (outbox.New, worker.New, migrations.New...) get the same
// refusals as the CLI: River's length limit, reserved words, pg_.
func TestValidate(t *testing.T) {
	for _, ok := range []string{"outboxd", "_x", "outbox_order", strings.Repeat("s", MaxLen)} {
		if err := Validate(ok); err != nil {
			t.Errorf("Validate(%q): %v", ok, err)
		}
	}
	for name, want := range map[string]string{
		strings.Repeat("s", MaxLen+1): "at most 46 characters",
		strings.Repeat("s", 56):       "at most 46 characters",
		"order":                       "reserved word",
		"pg_hooks":                    "pg_",
		"Bad-Name":                    "lower-case",
		"":                            "lower-case",
	} {
		if err := Validate(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%q) = %v, want %q", name, err, want)
		}
	}
}
