package main

import (
	"context"
	"net"
	"path/filepath"
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
// operator's trial). target_session_attrs still checks the address
// tried first: one that became a standby is passed over.
type stickyHost struct {
	mu       sync.Mutex
	resolved map[string][]string // a host name: the addresses it resolved to
	last     string              // where the last connection went: ip:port, or a socket's path
}

// stickTo installs s on cfg; pools made from cfg's copies (pool.Config())
// share it.
func stickTo(cfg *pgxpool.Config) {
	s := &stickyHost{resolved: map[string][]string{}}
	lookup := cfg.ConnConfig.LookupFunc
	cfg.ConnConfig.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
		addrs, err := lookup(ctx, host)
		if err == nil {
			s.mu.Lock()
			s.resolved[host] = addrs
			s.mu.Unlock()
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
		if nc := c.PgConn().Conn(); nc != nil && nc.RemoteAddr() != nil {
			s.mu.Lock()
			s.last = nc.RemoteAddr().String()
			s.mu.Unlock()
		}
		if after != nil {
			return after(ctx, c)
		}
		return nil
	}
}

// reorder puts the entries of cfg (its host, then its fallbacks) that
// lead to the last connection's address first, keeping the order within
// each part (TLS before plain, as pgx lists them for sslmode=prefer).
func (s *stickyHost) reorder(cfg *pgconn.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == "" {
		return
	}
	entries := append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...)
	leads := func(e *pgconn.FallbackConfig) bool { return s.leadsToLast(e.Host, e.Port) }
	if leads(entries[0]) || !slices.ContainsFunc(entries, leads) {
		return
	}
	var first, rest []*pgconn.FallbackConfig
	for _, e := range entries {
		if leads(e) {
			first = append(first, e)
		} else {
			rest = append(rest, e)
		}
	}
	entries = append(first, rest...)
	cfg.Host, cfg.Port, cfg.TLSConfig = entries[0].Host, entries[0].Port, entries[0].TLSConfig
	cfg.Fallbacks = entries[1:]
}

// leadsToLast reports whether host and port are the last connection's
// address: the same IP, one the name resolved to, or the same socket.
func (s *stickyHost) leadsToLast(host string, port uint16) bool {
	p := strconv.Itoa(int(port))
	if filepath.IsAbs(host) {
		return filepath.Join(host, ".s.PGSQL."+p) == s.last
	}
	if net.JoinHostPort(host, p) == s.last {
		return true
	}
	return slices.ContainsFunc(s.resolved[host], func(ip string) bool { return net.JoinHostPort(ip, p) == s.last })
}
