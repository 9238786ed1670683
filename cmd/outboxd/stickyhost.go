package main

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// stickyHost makes a pool's new connections try first the address its
// last connection went to, then the URL's hosts in their order. pgx tries
// them in the URL's order each time: behind a first host gone silent (an
// old primary after a failover) every new connection waited out its
// connect timeout there, and serve, whose River statements wait at most
// 10 s for a connection, could not start with the default 10 s bound (an
// operator's trial).
type stickyHost struct {
	mu       sync.Mutex
	resolved map[string][]string // a host name: the addresses it resolved to
	last     netip.AddrPort      // where the last connection went over TCP
	socket   string              // or the socket's path, over a Unix socket
}

// stickTo installs a stickyHost on cfg when it asks for a writable server
// (target_session_attrs read-write or primary, from the URL or
// PGTARGETSESSIONATTRS), which pgx checks on the address tried first as
// on any other: one that became a standby is passed over. Under any
// (pgx's default) a connection that went to the second host once, in a
// blip of the first, would pin every later one there, on a standby that
// refuses writes for good (a review). Pools made from cfg's copies
// (pool.Config()) share it.
func stickTo(cfg *pgxpool.Config) {
	if !asksForWrites(&cfg.ConnConfig.Config) {
		return
	}
	s := &stickyHost{resolved: map[string][]string{}}
	lookup := cfg.ConnConfig.LookupFunc
	cfg.ConnConfig.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
		addrs, err := lookup(ctx, host)
		if err == nil {
			addrs = s.resolvedTo(host, addrs)
		}
		return addrs, err
	}
	before, after := cfg.BeforeConnect, cfg.AfterConnect
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		if before != nil {
			if err := before(ctx, cc); err != nil {
				return err
			}
		}
		s.reorder(&cc.Config) // cc is the pool's copy, for this connection only
		return nil
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if nc := c.PgConn().Conn(); nc != nil {
			s.reached(nc.RemoteAddr())
		}
		if after != nil {
			return after(ctx, c)
		}
		return nil
	}
}

// reached notes the address a connection went to.
func (s *stickyHost) reached(a net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch a := a.(type) {
	case *net.TCPAddr:
		s.last, s.socket = unzoned(a.AddrPort()), ""
	case *net.UnixAddr:
		s.last, s.socket = netip.AddrPort{}, a.Name
	}
}

// resolvedTo notes what host resolved to and puts the last connection's
// address first among them: pgx tries a name's addresses in turn, so
// behind a first address gone silent reordering the URL's hosts did not
// help a name that resolves to several (a review).
func (s *stickyHost) resolvedTo(host string, addrs []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolved[host] = addrs
	i := slices.IndexFunc(addrs, func(a string) bool { return s.last.IsValid() && lookedUp(a, s.last.Port()) == s.last })
	if i <= 0 {
		return addrs
	}
	return append(append([]string{addrs[i]}, addrs[:i]...), addrs[i+1:]...)
}

// reorder puts first, for each entry of cfg (its host, then its
// fallbacks) that leads to the last connection's address, a copy aimed at
// that address, keeping each one's TLS config (its server name included),
// so that sslmode=prefer's plain attempt comes before another address's
// TLS one (a review: a name's entries, TLS then plain, each expanded to
// its addresses, put the silent address before the plain attempt). The
// entries that were that address already are moved, not repeated.
func (s *stickyHost) reorder(cfg *pgconn.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.last.IsValid() && s.socket == "" {
		return
	}
	entries := append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...)
	var first, rest []*pgconn.FallbackConfig
	for _, e := range entries {
		switch {
		case !s.leadsToLast(e.Host, e.Port):
			rest = append(rest, e)
		case filepath.IsAbs(e.Host) || lookedUp(e.Host, e.Port) == s.last:
			first = append(first, e)
		default: // a name: aimed at its address, and kept for its others
			first = append(first, &pgconn.FallbackConfig{Host: s.last.Addr().String(), Port: s.last.Port(), TLSConfig: e.TLSConfig})
			rest = append(rest, e)
		}
	}
	if len(first) == 0 {
		return
	}
	entries = append(first, rest...)
	cfg.Host, cfg.Port, cfg.TLSConfig = entries[0].Host, entries[0].Port, entries[0].TLSConfig
	cfg.Fallbacks = entries[1:]
}

// leadsToLast reports whether host and port are the last connection's
// address: the same IP (as an address, not as text: ::1 and
// 0:0:0:0:0:0:0:1 are one), one the name resolved to, or the same socket.
func (s *stickyHost) leadsToLast(host string, port uint16) bool {
	if filepath.IsAbs(host) {
		return s.socket != "" && filepath.Join(host, ".s.PGSQL."+strconv.Itoa(int(port))) == s.socket
	}
	if !s.last.IsValid() {
		return false
	}
	if lookedUp(host, port) == s.last {
		return true
	}
	return slices.ContainsFunc(s.resolved[host], func(a string) bool { return lookedUp(a, port) == s.last })
}

// lookedUp reads an address as a LookupFunc gives it, an IP or ip:port
// (then port is the entry's), IPv4 and its IPv6 mapped form alike, zones
// left out; the zero AddrPort when it is neither.
func lookedUp(text string, port uint16) netip.AddrPort {
	if ap, err := netip.ParseAddrPort(text); err == nil {
		return unzoned(ap)
	}
	if a, err := netip.ParseAddr(text); err == nil {
		return unzoned(netip.AddrPortFrom(a, port))
	}
	return netip.AddrPort{}
}

func unzoned(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

// asksForWrites reports whether cfg's target_session_attrs is read-write
// or primary: pgx keeps only the check it made of it.
func asksForWrites(cfg *pgconn.Config) bool {
	if cfg.ValidateConnect == nil {
		return false
	}
	f := reflect.ValueOf(cfg.ValidateConnect).Pointer()
	return f == reflect.ValueOf(pgconn.ValidateConnectTargetSessionAttrsReadWrite).Pointer() ||
		f == reflect.ValueOf(pgconn.ValidateConnectTargetSessionAttrsPrimary).Pointer()
}
