package main

import (
	"crypto/tls"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// reorder puts first the entries that lead to the last connection's
// address, by IP, by a name that resolved to it, or by socket path,
// keeping each part's order (TLS before plain for one host).
func TestStickyHostReorder(t *testing.T) {
	t.Parallel()
	tlsCfg := &tls.Config{ServerName: "b"}
	for _, tc := range []struct {
		name, last string
		resolved   map[string][]string
		want       []string // host:port of each entry, in order; nil: unchanged
	}{
		{"no connection yet", "", nil, nil},
		{"already first", "10.0.0.1:5432", nil, nil},
		{"second host by IP", "10.0.0.2:5433", nil, []string{"10.0.0.2:5433", "10.0.0.2:5433", "10.0.0.1:5432", "/run/pg:5432"}},
		{"by a name that resolved to it", "10.9.9.9:5433", map[string][]string{"10.0.0.2": {"10.9.9.8", "10.9.9.9"}}, []string{"10.0.0.2:5433", "10.0.0.2:5433", "10.0.0.1:5432", "/run/pg:5432"}},
		{"a socket", "/run/pg/.s.PGSQL.5432", nil, []string{"/run/pg:5432", "10.0.0.1:5432", "10.0.0.2:5433", "10.0.0.2:5433"}},
		{"an address no entry leads to", "10.7.7.7:5432", nil, nil},
	} {
		cfg := &pgconn.Config{Host: "10.0.0.1", Port: 5432, Fallbacks: []*pgconn.FallbackConfig{
			{Host: "10.0.0.2", Port: 5433, TLSConfig: tlsCfg}, {Host: "10.0.0.2", Port: 5433}, {Host: "/run/pg", Port: 5432}}}
		s := &stickyHost{last: tc.last, resolved: tc.resolved}
		s.reorder(cfg)
		got := []string{entry(cfg.Host, cfg.Port)}
		for _, fb := range cfg.Fallbacks {
			got = append(got, entry(fb.Host, fb.Port))
		}
		want := tc.want
		if want == nil {
			want = []string{"10.0.0.1:5432", "10.0.0.2:5433", "10.0.0.2:5433", "/run/pg:5432"}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %v, want %v", tc.name, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: %v, want %v", tc.name, got, want)
			}
		}
		if tc.name == "second host by IP" && (cfg.TLSConfig != tlsCfg || cfg.Fallbacks[0].TLSConfig != nil) {
			t.Fatalf("%s: the TLS attempt is not first, or lost its config", tc.name)
		}
	}
}

func entry(host string, port uint16) string {
	return host + ":" + map[uint16]string{5432: "5432", 5433: "5433"}[port]
}
