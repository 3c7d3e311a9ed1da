#!/bin/sh
# instrs.sh counts the instructions a benchmark spends per operation, by
# function, under valgrind's cachegrind. On a loaded host timings drift
# by tens of percent from run to run; an instruction count does not, so
# it can tell a change of a few percent in the in-memory path. It needs
# valgrind (cachegrind and cg_annotate).
#
#   bench/instrs.sh TESTBIN PKGDIR BENCH N [TOP]
#
# TESTBIN is a test binary (go test -c -o TESTBIN ./PKG), PKGDIR the
# package's directory (its testdata), BENCH a -test.bench pattern that
# matches one benchmark (anchor it: '^BenchmarkPipeline$/^emc$'), N the
# operations of a run. A run includes the benchmark's setup, so the
# script runs N and 3N operations and divides the difference by 2N; N
# must be past any warm-up (Pipeline/megaflow upcalls its 65,536 flows
# first: N = 131072). The runs have one thread and no garbage collector
# (GOMAXPROCS=1, GOGC=off), whose work would not scale with N. It
# prints the TOP (default 25) functions that spend the most, and the
# total.
set -eu
bin=$1 dir=$2 bench=$3 n=$4 top=${5:-25}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for k in 1 3; do
	(cd "$dir" && GOMAXPROCS=1 GOGC=off valgrind --tool=cachegrind --cache-sim=no \
		--cachegrind-out-file="$tmp/cg.$k" "$bin" -test.run '^$' \
		-test.bench "$bench" -test.benchtime "$((k * n))x" >/dev/null 2>&1)
	# The per-function totals: "count (pct)  file:function".
	cg_annotate --threshold=0.01 "$tmp/cg.$k" |
		awk '/^ *[0-9,]+ \(/ && /\.go:|\.s:|\?\?\?:/ { gsub(",", "", $1); f = $NF; sub(/.*:/, "", f); s[f] += $1 }
			END { for (f in s) print f, s[f] }' >"$tmp/f.$k"
done
awk -v n="$n" -v total="$tmp/total" '
	FNR == NR { a[$1] = $2; next }
	{ c[$1] = $2 }
	END {
		for (f in a) if (!(f in c)) c[f] = 0
		for (f in c) { d = (c[f] - a[f]) / (2 * n); t += d; if (d >= 0.5 || d <= -0.5) printf "%9.1f  %s\n", d, f }
		printf "%9.1f  total instructions per op\n", t > total
	}' "$tmp/f.1" "$tmp/f.3" | sort -rn | head -n "$top"
cat "$tmp/total"
