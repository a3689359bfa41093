#!/usr/bin/env bash
# Where a node's time goes during searches: a callgrind profile (valgrind)
# of a release `nadc serve` answering `nadc bench search`, on this VM where
# `perf` gets no samples. Callgrind counts instructions, not time: I/O
# waits and the fsync of the audit write do not show; CPU work does, with
# every function's inclusive share.
#
#   benches/profile.sh [VEHICLES] [KIND] [SEARCHES]
#
# VEHICLES defaults to 60000 (about a million reads), KIND to geo1km1h (any
# `nadc bench search --kind`), SEARCHES to 100. The node is loaded at full
# speed first, then restarted under callgrind with instrumentation off; it is
# instrumented for the timed searches only (after the cache warm-up and the
# bench's untimed warm-up searches). Prints the top functions by inclusive
# instructions and keeps the full profile in benches/profile-out/ for
# `callgrind_annotate` or KCachegrind.
set -euo pipefail
cd "$(dirname "$0")/.."
VEHICLES="${1:-60000}"
KIND="${2:-geo1km1h}"
SEARCHES="${3:-100}"
source benches/common.sh
bench_need_valgrind
bench_workdir profile
bench_stop() { bench_unserve; }
out="benches/profile-out"
mkdir -p "$out"

bench_generate "$VEHICLES"
"$NADC" pki init --out "$work/pki" --forces "$(IFS=,; echo "${FORCES[*]}")" --users bench:analyst:AVON >/dev/null
bench_serve "$work/serve.log" -- --block-cache-mb 256
echo "== loading" >&2
bench_load the_node
bench_unserve

echo "== restarting under callgrind (slow: about 50 times)" >&2
profile="$out/callgrind.$KIND.out"
rm -f "$profile"
bench_serve "$work/serve.log" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$profile" \
  -- --block-cache-mb 256
for _ in $(seq 1 3000); do grep -q "block cache warmed" "$work/serve.log" && break; sleep 0.2; done
export NADC_CERT="$work/pki/users/bench.crt" NADC_KEY="$work/pki/users/bench.key"
# Untimed warm-up uninstrumented, then the profiled searches.
"$NADC" bench search --gen-dir "$work/gen" --kind "$KIND" --iterations 10 >/dev/null
callgrind_control -i on "$server" >/dev/null
"$NADC" bench search --gen-dir "$work/gen" --kind "$KIND" --iterations "$SEARCHES" --seed 7
callgrind_control -i off "$server" >/dev/null
bench_unserve
echo
echo "Top functions by inclusive instructions, $SEARCHES $KIND searches ($(date -u +%Y-%m-%d)):"
callgrind_annotate --inclusive=yes "$profile" 2>/dev/null | sed -n '/^-\+$/,$p' | head -60
echo "full profile: $profile"
