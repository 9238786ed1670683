package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/internal/bench/pgbench"
)

// sameSQL is pgbench's receipt script sent by this process through pgx: the
// same three statements with the same values, in one transaction per
// receipt, without outboxd's code. What is left between it and pgbench is
// the Go client (pgx, the runtime, the scheduler on the same cores), not
// outboxd; what is left between it and outboxd's row is outboxd.
type sameSQL struct {
	stmts []string // :ev is $1 (text), :key is $2 (text)
}

// loadSameSQL reads the statements between BEGIN; and COMMIT; of the
// pgbench script, so the two can never drift apart.
func loadSameSQL(script string) (*sameSQL, error) {
	b, err := os.ReadFile(script)
	if err != nil {
		return nil, err
	}
	var body []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch strings.TrimSpace(line) {
		case "BEGIN;":
			in = true
			continue
		case "COMMIT;":
			in = false
		}
		if in {
			body = append(body, line)
		}
	}
	s := &sameSQL{}
	r := strings.NewReplacer(":ev", "$1", ":key", "$2")
	for _, st := range strings.Split(strings.Join(body, "\n"), ";\n") {
		if st = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(st), ";")); st != "" {
			s.stmts = append(s.stmts, r.Replace(st))
		}
	}
	if len(s.stmts) != 3 {
		return nil, fmt.Errorf("%s: want 3 statements between BEGIN; and COMMIT;, found %d", script, len(s.stmts))
	}
	return s, nil
}

func (s *sameSQL) measure(ctx context.Context, url string, conns int, d time.Duration) (float64, error) {
	return pgbench.Drive(ctx, url, conns, d, func(tx pgx.Tx) error {
		// pgbench's random(1, 9223372036854775806) and random(1, 10000).
		ev, key := strconv.FormatInt(1+rand.Int64N(9223372036854775806), 10), strconv.Itoa(1+rand.IntN(10000))
		for _, st := range s.stmts {
			var args []any
			switch {
			case strings.Contains(st, "$2"):
				args = []any{ev, key}
			case strings.Contains(st, "$1"):
				args = []any{ev}
			}
			// Read as pgbench does: every row returned, values discarded.
			rows, err := tx.Query(ctx, st, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
}
