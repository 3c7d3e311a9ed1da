package plant

import "testing"

// FuzzPlant is the target the libFuzzer build must crash on; it takes two
// arguments so that the input goes through the harness's decoder.
func FuzzPlant(f *testing.F) {
	f.Add(uint32(7), []byte("seed"))
	f.Fuzz(func(t *testing.T, tag uint32, data []byte) {
		if n := Check(tag, data); n < 0 {
			t.Fatalf("negative length %d", n)
		}
	})
}
