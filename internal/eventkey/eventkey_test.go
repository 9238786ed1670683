package eventkey

import (
	"strings"
	"testing"
)

// MaxLen (200) is where ids start being keyed by their hash; Forms gives a
// long id's two forms and a short id's one.
func TestStorageAndFormsAt200(t *testing.T) {
	at, over := strings.Repeat("a", MaxLen), strings.Repeat("a", MaxLen+1)
	if MaxLen != 200 || Storage(at) != at {
		t.Fatalf("an id of %d bytes is not stored as itself", MaxLen)
	}
	k := Storage(over)
	if !strings.HasPrefix(k, "sha256:") || len(k) != len("sha256:")+64 || Storage(k) != k {
		t.Fatalf("Storage(201 bytes) = %q", k)
	}
	if f := Forms(at); len(f) != 1 || f[0] != at {
		t.Errorf("Forms(short) = %q", f)
	}
	if f := Forms(over); len(f) != 2 || f[0] != over || f[1] != k {
		t.Errorf("Forms(long) = %q", f)
	}
}
