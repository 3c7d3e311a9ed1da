// Package xplant holds a fuzz target in an external test package (package
// xplant_test) that uses an export_test.go helper, for the libFuzzer
// build's own test.
package xplant

// sum adds the bytes of b.
func sum(b []byte) int {
	n := 0
	for _, c := range b {
		n += int(c)
	}
	return n
}
