package main

import (
	"errors"
	"regexp"
)

// pkgPrefix matches the "outbox: " that each library layer puts in front of
// its errors; under "outboxd outbox: " they only stutter.
var pkgPrefix = regexp.MustCompile(`(^|: )(?:outbox|inbox|migrations|worker|dispatch|verify): `)

// describe is an error as the CLI prints it: without the packages' prefixes.
func describe(err error) error {
	msg := err.Error()
	for {
		next := pkgPrefix.ReplaceAllString(msg, "$1")
		if next == msg {
			return errors.New(msg)
		}
		msg = next
	}
}

// missingRelation finds the schema in PostgreSQL's "relation ... does not
// exist" (42P01).
var missingRelation = regexp.MustCompile(`relation "([a-z_][a-z0-9_]*)\.([a-z_]+)" does not exist`)
