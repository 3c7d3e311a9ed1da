#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build script: every Go fuzz target of the
# module (func FuzzX(f *testing.F)) becomes a libFuzzer binary in $OUT,
# with its seed corpus (NAME_seed_corpus.zip), its dictionary (NAME.dict,
# from test/libfuzzer/dict) and the package's testdata (NAME.pkg/) beside
# it. test/libfuzzer does what OSS-Fuzz's compile_native_go_fuzzer does
# (-gcflags=all=-d=libfuzzer, -buildmode=c-archive, linked with
# $CXX $CXXFLAGS $LIB_FUZZING_ENGINE) for all targets at once, and also
# takes fuzz functions with several arguments and test helpers that other
# test files and packages hold. OVSXDP_FUZZ_TARGETS narrows the build
# (PKG.FuzzName or package patterns, e.g. ./flow/...).
cd "$SRC/ovsxdp"
go run ./test/libfuzzer build -o "$OUT" ${OVSXDP_FUZZ_TARGETS:-}
