package pg

import (
	"errors"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ConnectAttempts are a failed connection's reasons, one per attempt
// ("address (host): reason"), each once: pgconn joins one error per
// attempt (per address, with TLS and without), one per line, often the
// same one twice. Under sslmode=prefer (pgx's default) a server without
// TLS refuses the first attempt on each address: that line is left out
// when another attempt on the address says what went wrong (/readyz
// showed "tls error" for a healthy server out of connections: an
// operator's trial). The lines hold no password: pgconn names the user,
// database, host and port only.
func ConnectAttempts(ce *pgconn.ConnectError) []string {
	inner := errors.Unwrap(ce)
	if inner == nil {
		return []string{ce.Error()}
	}
	all := strings.Split(inner.Error(), "\n")
	var lines []string
	for _, l := range all {
		if !TLSRefusedBeside(l, all) && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return lines
}

// TLSRefusedBeside reports whether attempt l is a server's refusal of TLS
// with another attempt on its address among all.
func TLSRefusedBeside(l string, all []string) bool {
	addr, _, _ := strings.Cut(l, " ")
	return strings.HasSuffix(l, ": tls error: server refused TLS connection") &&
		slices.ContainsFunc(all, func(o string) bool { return o != l && strings.HasPrefix(o, addr+" ") })
}

// DescribeConnectError is err in one line: a failed connection's
// attempts joined by "; " (ConnectAttempts), any other error as it is.
func DescribeConnectError(err error) string {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		return err.Error()
	}
	return "cannot connect to PostgreSQL: " + strings.Join(ConnectAttempts(ce), "; ")
}
