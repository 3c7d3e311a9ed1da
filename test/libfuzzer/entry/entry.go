// Package entry exports libFuzzer's entry points, LLVMFuzzerInitialize and
// LLVMFuzzerTestOneInput, from a libFuzzer build of a Go fuzz target. The
// main package that test/libfuzzer generates registers the target's
// harness here; it lives only in go build's overlay, where cgo cannot run,
// so the cgo part is this package.
package entry

// #include <stdint.h>
// #include <stdlib.h>
import "C"

import (
	"os"
	"unsafe"
)

// Harness is one fuzz target: Main runs at libFuzzer's initialization, Run
// once per input, and a non-nil error from it is a crash.
type Harness interface {
	Main()
	Run(data []byte) error
}

var harness Harness

// Register sets the harness; the generated main calls it from a package
// variable's initializer, which runs before libFuzzer calls in.
func Register(h Harness) bool {
	harness = h
	return true
}

//export LLVMFuzzerInitialize
func LLVMFuzzerInitialize(argc *C.int, argv ***C.char) C.int {
	harness.Main()
	return 0
}

// LLVMFuzzerTestOneInput runs one input. A failure is printed and the
// process aborts, which libFuzzer reports as a crash and saves the input.
//
//export LLVMFuzzerTestOneInput
func LLVMFuzzerTestOneInput(data *C.uint8_t, size C.size_t) C.int {
	if err := harness.Run(C.GoBytes(unsafe.Pointer(data), C.int(size))); err != nil {
		os.Stderr.WriteString(err.Error())
		C.abort()
	}
	return 0
}
