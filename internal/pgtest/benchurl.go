package pgtest

import (
	"flag"
	"os"
)

const benchLocalURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// BenchDatabaseURL registers -database-url on fs for a benchmark and
// returns the URL to use once fs is parsed: the flag's, else
// $DATABASE_URL, else the local server. Its help names those sources,
// never $DATABASE_URL's value: a URL may hold a password.
func BenchDatabaseURL(fs *flag.FlagSet, usage string) func() string {
	v := fs.String("database-url", "", usage+" (default: $DATABASE_URL, else "+benchLocalURL+")")
	return func() string {
		if *v != "" {
			return *v
		}
		if e := os.Getenv("DATABASE_URL"); e != "" {
			return e
		}
		return benchLocalURL
	}
}
