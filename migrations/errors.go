package migrations

import "github.com/outboxd/outboxd/internal/pg"

func isSQLState(err error, code string) bool { return pg.SQLState(err) == code }
