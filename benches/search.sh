#!/usr/bin/env bash
# Search latency benchmark: a release node loaded with generated reads,
# searched from a client process over mTLS (`nadc bench search`), reporting
# p50/p90/p99 per search kind.
#
#   benches/search.sh [VEHICLES] [ITERATIONS]
#
# VEHICLES defaults to 620000 (just over 10 million reads; `nadc gen` makes
# about 16 reads per vehicle); ITERATIONS to 300 timed searches per kind
# (after 10 % as many warm-up searches: the figures are warm-cache); the
# 5 km / 24 h search runs a tenth as often (each returns ~10^5 rows).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
VEHICLES="${1:-620000}"
ITERATIONS="${2:-300}"

cargo build --release --bin nadc >&2
NADC="$CARGO_TARGET_DIR/release/nadc"
work=$(mktemp -d /tmp/nadc-search.XXXXXX)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

day=$(date -u -d yesterday +%Y-%m-%d)
echo "== generating $VEHICLES vehicles on $day" >&2
"$NADC" gen --out "$work/gen" --vehicles "$VEHICLES" --day "$day" >&2
# One BOF per force the generated world has (27 across Great Britain).
FORCES=()
for d in "$work/gen"/*/; do FORCES+=("$(basename "$d")"); done
"$NADC" pki init --out "$work/pki" --forces "$(IFS=,; echo "${FORCES[*]}")" --users bench:analyst:AVON >/dev/null
"$NADC" serve --data "$work/data" --listen 127.0.0.1:0 --tls-dir "$work/pki" --addr-file "$work/addr" 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 200); do [ -s "$work/addr" ] && break; sleep 0.05; done
export NADC_NODE="https://$(cat "$work/addr")" NADC_CA="$work/pki/ca.crt"
echo "== loading" >&2
start=$(date +%s)
pids=()
for f in "${FORCES[@]}"; do
  (
    export NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key"
    "$NADC" cameras import "$work/gen/$f/cameras.csv" >/dev/null
    "$NADC" push "$work/gen/$f/reads.csv" >"$work/push-$f.log"
  ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
echo "loaded in $(( $(date +%s) - start )) s" >&2
export NADC_CERT="$work/pki/users/bench.crt" NADC_KEY="$work/pki/users/bench.key"
reads=$("$NADC" node info | sed -n 's/^reads: *//p')
echo
echo "Search latency on $reads reads ($(nproc) cores, release, warm cache), $(date -u +%Y-%m-%d)"
for kind in vrm fuzzy geo1km1h geo5km24h geo-two-area-all vehicle convoy; do
  n="$ITERATIONS"
  # A 5 km / 24 h search returns a large part of a town's day: fewer runs.
  if [ "$kind" = geo5km24h ]; then n=$(( ITERATIONS / 10 > 20 ? ITERATIONS / 10 : 20 )); fi
  "$NADC" bench search --gen-dir "$work/gen" --kind "$kind" --iterations "$n"
done
echo "data directory: $(du -sh "$work/data" | cut -f1)"
