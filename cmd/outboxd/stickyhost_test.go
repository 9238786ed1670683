package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/internal/pgtest"
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
		{"by a name that resolved to it", "10.9.9.9:5433", map[string][]string{"10.0.0.2": {"10.9.9.8", "10.9.9.9"}}, []string{"10.9.9.9:5433", "10.9.9.9:5433", "10.0.0.1:5432", "10.0.0.2:5433", "10.0.0.2:5433", "/run/pg:5432"}},
		{"by a name, as an IPv4-mapped address", "10.9.9.9:5433", map[string][]string{"10.0.0.2": {"::ffff:10.9.9.9"}}, []string{"10.9.9.9:5433", "10.9.9.9:5433", "10.0.0.1:5432", "10.0.0.2:5433", "10.0.0.2:5433", "/run/pg:5432"}},
		{"by a name, IPv6 written another way", "[::1]:5433", map[string][]string{"10.0.0.2": {"0:0:0:0:0:0:0:1"}}, []string{"::1:5433", "::1:5433", "10.0.0.1:5432", "10.0.0.2:5433", "10.0.0.2:5433", "/run/pg:5432"}},
		{"the same IP on another port", "10.0.0.2:5432", nil, nil},
		{"by a name resolved to ip:port", "10.9.9.9:6000", map[string][]string{"10.0.0.2": {"10.9.9.9:6000"}}, []string{"10.9.9.9:6000", "10.9.9.9:6000", "10.0.0.1:5432", "10.0.0.2:5433", "10.0.0.2:5433", "/run/pg:5432"}},
		{"a socket", "/run/pg/.s.PGSQL.5432", nil, []string{"/run/pg:5432", "10.0.0.1:5432", "10.0.0.2:5433", "10.0.0.2:5433"}},
		{"an address no entry leads to", "10.7.7.7:5432", nil, nil},
	} {
		cfg := &pgconn.Config{Host: "10.0.0.1", Port: 5432, Fallbacks: []*pgconn.FallbackConfig{
			{Host: "10.0.0.2", Port: 5433, TLSConfig: tlsCfg}, {Host: "10.0.0.2", Port: 5433}, {Host: "/run/pg", Port: 5432}}}
		s := &stickyHost{resolved: tc.resolved}
		if strings.HasPrefix(tc.last, "/") {
			s.reached(&net.UnixAddr{Name: tc.last, Net: "unix"})
		} else if tc.last != "" {
			s.reached(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tc.last)))
		}
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
		if (tc.name == "second host by IP" || tc.name == "by a name that resolved to it") && (cfg.TLSConfig != tlsCfg || cfg.Fallbacks[0].TLSConfig != nil) {
			t.Fatalf("%s: the TLS attempt is not first, or lost its config", tc.name)
		}
	}
}

// A name's addresses come back with the last connection's first: pgx
// tries them in turn, and behind a silent first one every new connection
// waited there (reordering the URL's hosts did nothing for one name).
func TestStickyHostOrdersANamesAddresses(t *testing.T) {
	t.Parallel()
	s := &stickyHost{resolved: map[string][]string{}}
	addrs := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
	if got := s.resolvedTo("db", slices.Clone(addrs)); !slices.Equal(got, addrs) {
		t.Fatalf("before any connection: %v, want %v", got, addrs)
	}
	s.reached(net.TCPAddrFromAddrPort(netip.MustParseAddrPort("[::ffff:10.0.0.3]:5432")))
	if got, want := s.resolvedTo("db", slices.Clone(addrs)), []string{"10.0.0.3", "10.0.0.1", "10.0.0.2"}; !slices.Equal(got, want) {
		t.Fatalf("after one to 10.0.0.3: %v, want %v", got, want)
	}
}

func entry(host string, port uint16) string {
	return host + ":" + strconv.Itoa(int(port))
}

// Against a server: a name that resolves to a refusing address, then the
// server's. With target_session_attrs=read-write only the pool's first
// connection meets the refusing address (it met it on every one, a
// review: pgx tries a name's addresses in turn, and reordering the URL's
// hosts did not touch them); under any (pgx's default) each connection
// tries the addresses in order, as pgx does, so that a blip of the first
// host does not pin the pool to the second for good.
func TestStickyHostWithANameOfTwoAddresses(t *testing.T) {
	t.Parallel()
	direct := pgtest.URL(t)
	proxy, refused, refusals := refuserBeside(t, hostOf(t, direct))
	_, port, _ := net.SplitHostPort(proxy)
	for _, tc := range []struct {
		attrs, sslmode string
		sticky         bool
	}{{"read-write", "disable", true}, {"read-write", "prefer", true}, {"primary", "disable", true}, {"any", "disable", false}} {
		u, err := url.Parse(direct)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = "db.test:" + port
		q := u.Query()
		q.Set("target_session_attrs", tc.attrs)
		q.Set("sslmode", tc.sslmode) // prefer: a TLS and a plain entry, each aimed at the last address
		q.Set("pool_max_conns", "6")
		u.RawQuery = q.Encode()
		cfg, err := pgxpool.ParseConfig(u.String())
		if err != nil {
			t.Fatal(err)
		}
		cfg.ConnConfig.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
			if _, err := netip.ParseAddr(host); err == nil {
				return []string{host}, nil // an entry aimed at the last address
			}
			if host != "db.test" {
				return nil, fmt.Errorf("unexpected host %q", host)
			}
			return []string{refused, "127.0.0.1"}, nil
		}
		stickTo(cfg)
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		before, first := refusals.Load(), int64(0)
		var held []*pgxpool.Conn
		for i := range 6 { // each one new: the earlier ones are held
			c, err := pool.Acquire(context.Background())
			if err != nil {
				t.Fatalf("%s: %v", tc.attrs, err)
			}
			held = append(held, c)
			if i == 0 {
				first = refusals.Load() - before // pgx's attempts at one address: 1 or more
			}
		}
		for _, c := range held {
			c.Release()
		}
		pool.Close()
		want := 6 * first
		if tc.sticky {
			want = first
		}
		if got := refusals.Load() - before; first == 0 || got != want {
			t.Fatalf("target_session_attrs=%s, sslmode=%s: the refusing address took %d attempts of 6 connections (%d of the first), want %d", tc.attrs, tc.sslmode, got, first, want)
		}
	}
}

// refuserBeside starts a proxy to target on 127.0.0.1 and, on the same
// port of 127.0.0.2, a listener that closes each connection at once. It
// returns the proxy's address, the refuser's IP and its count.
func refuserBeside(t *testing.T, target string) (string, string, *atomic.Int64) {
	t.Helper()
	for range 20 {
		proxy := newFreezer(t, target)
		_, port, _ := net.SplitHostPort(proxy.ln.Addr().String())
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", port))
		if err != nil {
			continue // taken there: another port
		}
		t.Cleanup(func() { _ = ln.Close() })
		n := new(atomic.Int64)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				n.Add(1)
				_ = c.Close()
			}
		}()
		return proxy.ln.Addr().String(), "127.0.0.2", n
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return "", "", nil
}

// Only a URL that asks for a writable server gets stickiness (and no
// warning): read-only, standby and prefer-standby are the standby trap
// the role check is there to avoid.
func TestAsksForWrites(t *testing.T) {
	t.Parallel()
	for attrs, want := range map[string]bool{"read-write": true, "primary": true, "any": false, "read-only": false, "standby": false, "prefer-standby": false} {
		cfg, err := pgconn.ParseConfig("postgres://u@a,b/db?target_session_attrs=" + attrs)
		if err != nil {
			t.Fatal(err)
		}
		if got := asksForWrites(cfg); got != want {
			t.Errorf("target_session_attrs=%s: %v, want %v", attrs, got, want)
		}
		if got := hostsWithoutRole(cfg) == nil; got != want {
			t.Errorf("target_session_attrs=%s: warned %v", attrs, !got)
		}
	}
	for dsn, want := range map[string]bool{
		"postgres://u@h/db?connect_timeout=5":                     true,
		"postgres://u:connect_timeout@h/connect_timeout":          false,
		"postgres://u@[::1]:5432,[::2]:5433/db?connect_timeout=5": true,
		"host=h connect_timeout=5":                                true,
		"host=h application_name=x_connect_timeout password=p":    false,
	} {
		if got := hasSetting(dsn, "connect_timeout"); got != want {
			t.Errorf("%s: %v, want %v", dsn, got, want)
		}
	}
}
