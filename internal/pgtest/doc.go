// Package pgtest gives every test its own PostgreSQL database, cloned from a
// migrated template, on a real server. It is imported only by tests, which
// keeps testcontainers-go out of the build of outboxd's library users.
//
// The server comes from the first of these that works:
//
//  1. OUTBOXD_TEST_DATABASE_URL, if set (a role that may CREATE DATABASE);
//  2. a server answering on 127.0.0.1:5432 as user postgres;
//  3. a container started by testcontainers-go, when a Docker engine runs;
//  4. a throwaway cluster started from the local PostgreSQL binaries
//     (initdb refuses root, so as root it runs as the postgres or nobody
//     user);
//
// and when none works the run fails with a message that says how to provide
// one. A test never skips for lack of a database.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package pgtest
