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
source scripts/bootstrap.sh
VEHICLES="${1:-60000}"
KIND="${2:-geo1km1h}"
SEARCHES="${3:-100}"

if ! command -v valgrind >/dev/null; then
  echo "== installing valgrind" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq valgrind >&2
fi
cargo build --release --bin nadc >&2
NADC="$CARGO_TARGET_DIR/release/nadc"
work=$(mktemp -d /tmp/nadc-profile.XXXXXX)
out="benches/profile-out"
mkdir -p "$out"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

day=$(date -u -d yesterday +%Y-%m-%d)
echo "== generating $VEHICLES vehicles on $day" >&2
"$NADC" gen --out "$work/gen" --vehicles "$VEHICLES" --day "$day" >&2
FORCES=()
for d in "$work/gen"/*/; do FORCES+=("$(basename "$d")"); done
"$NADC" pki init --out "$work/pki" --forces "$(IFS=,; echo "${FORCES[*]}")" --users bench:analyst:AVON >/dev/null
serve() { # [WRAPPER...]
  rm -f "$work/addr"
  "$@" "$NADC" serve --data "$work/data" --listen 127.0.0.1:0 --tls-dir "$work/pki" \
    --block-cache-mb 256 --addr-file "$work/addr" 2>"$work/serve.log" &
  server=$!
  for _ in $(seq 1 6000); do [ -s "$work/addr" ] && break; sleep 0.1; done
  export NADC_NODE="https://$(cat "$work/addr")" NADC_CA="$work/pki/ca.crt"
}
serve
echo "== loading" >&2
pids=()
for f in "${FORCES[@]}"; do
  (
    export NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key"
    "$NADC" cameras import "$work/gen/$f/cameras.csv" >/dev/null
    "$NADC" push "$work/gen/$f/reads.csv" >/dev/null
  ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
kill -INT "$server"; wait "$server" || true

echo "== restarting under callgrind (slow: about 50 times)" >&2
profile="$out/callgrind.$KIND.out"
rm -f "$profile"
serve valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$profile"
for _ in $(seq 1 3000); do grep -q "block cache warmed" "$work/serve.log" && break; sleep 0.2; done
export NADC_CERT="$work/pki/users/bench.crt" NADC_KEY="$work/pki/users/bench.key"
# Untimed warm-up uninstrumented, then the profiled searches.
"$NADC" bench search --gen-dir "$work/gen" --kind "$KIND" --iterations 10 >/dev/null
callgrind_control -i on "$server" >/dev/null
"$NADC" bench search --gen-dir "$work/gen" --kind "$KIND" --iterations "$SEARCHES" --seed 7
callgrind_control -i off "$server" >/dev/null
kill -INT "$server"; wait "$server" || true
server=""
echo
echo "Top functions by inclusive instructions, $SEARCHES $KIND searches ($(date -u +%Y-%m-%d)):"
callgrind_annotate --inclusive=yes "$profile" 2>/dev/null | sed -n '/^-\+$/,$p' | head -60
echo "full profile: $profile"
