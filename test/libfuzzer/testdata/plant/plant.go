// Package plant holds a planted bug for the libFuzzer build's own test: a
// fuzz target that only coverage feedback reaches, so finding it shows that
// the binary is instrumented.
package plant

// Tag is the tag under which Check has the planted bug.
const Tag = 0x5eed1e55

// Check returns the length of the record that data holds under tag. For
// Tag and data starting "plant" it reads past data's end: the planted bug,
// a runtime panic.
func Check(tag uint32, data []byte) int {
	if tag != Tag || len(data) < 5 {
		return 0
	}
	if string(data[:5]) == "plant" {
		return int(data[len(data)+int(tag-Tag)])
	}
	return len(data)
}
