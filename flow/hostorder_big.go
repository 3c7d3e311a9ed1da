//go:build !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm)

package flow

// hostLittleEndian says how a word stored whole lays out its bytes: most
// significant first.
const hostLittleEndian = false
