#!/usr/bin/env bash
# Instructions a node spends ingesting: a callgrind profile (valgrind) of a
# release `nadc serve` while every force's `nadc push` loads generated
# reads at once over mTLS, as in ingest-cpu.sh. Callgrind counts
# instructions, not time: the same binary and data give the same counts
# within a fraction of a per cent whatever else the machine does, so two
# builds can be compared where a wall-clock rate would be lost in the
# run-to-run spread.
#
#   benches/ingest-profile.sh [VEHICLES] [FUNCTION]
#
# VEHICLES defaults to 2000 (about 34,000 reads: about 50 times slower
# under valgrind, a minute here). FUNCTION, if given, is a callgrind
# --toggle-collect pattern (e.g. '*PreparedReads*new*'): only instructions
# inside it are counted. Prints the total, instructions per accepted read
# and the top functions by inclusive instructions; keeps the profile in
# benches/profile-out/ for `callgrind_annotate` or KCachegrind. Counts
# include the node's start, its cache warm-up and the camera imports.
set -euo pipefail
cd "$(dirname "$0")/.."
VEHICLES="${1:-2000}"
FUNCTION="${2:-}"
source benches/common.sh
bench_need_valgrind
bench_workdir ingest-profile
bench_stop() { bench_unserve; }
out="benches/profile-out"
mkdir -p "$out"
profile="$out/callgrind.ingest.out"
rm -f "$profile"

bench_generate "$VEHICLES"
"$NADC" pki init --out "$work/pki" --forces "$(IFS=,; echo "${FORCES[*]}")" --users bench:analyst:AVON >/dev/null
wrapper=(valgrind --tool=callgrind --callgrind-out-file="$profile")
if [ -n "$FUNCTION" ]; then wrapper+=("--toggle-collect=$FUNCTION"); fi
echo "== loading under callgrind" >&2
bench_serve "$work/serve.log" "${wrapper[@]}"
bench_load the_node
accepted=$(bench_accepted)
bench_unserve
total=$(callgrind_annotate "$profile" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo
echo "Ingest instructions, $accepted reads ($VEHICLES vehicles, ${#FORCES[@]} forces), $(date -u +%Y-%m-%d)${FUNCTION:+, inside $FUNCTION}:"
echo "total $total, per read $(( total / accepted ))"
callgrind_annotate --inclusive=yes "$profile" 2>/dev/null | sed -n '/^-\+$/,$p' | head -40
echo "full profile: $profile"
