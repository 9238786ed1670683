package migrations

// AlterBriefly is alterBriefly, for the tests of package migrations_test
// (which can import pgtest; this package's own tests cannot).
var AlterBriefly = alterBriefly
