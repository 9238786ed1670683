// Package readme holds the test that keeps README.md's Go blocks compiling:
// each one is a region of an example test (example_readme_test.go in the
// package it is about), and the test fails when a block and its region
// differ.
package readme
