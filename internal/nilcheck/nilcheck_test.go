package nilcheck

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

func TestIsNil(t *testing.T) {
	var pool *pgxpool.Pool
	var m map[string]int
	var f func()
	for i, c := range []struct {
		v    any
		want bool
	}{
		{nil, true}, {pool, true}, {m, true}, {f, true},
		{&pgxpool.Pool{}, false}, {map[string]int{}, false}, {0, false}, {"", false}, {struct{}{}, false},
	} {
		if got := IsNil(c.v); got != c.want {
			t.Errorf("case %d (%T): IsNil %v, want %v", i, c.v, got, c.want)
		}
	}
}
