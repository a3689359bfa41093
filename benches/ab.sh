#!/usr/bin/env bash
# Two builds of the node on the same store, searched in alternation: the
# ratio of a change's search latency to its baseline's, measured in one
# run on the same data (drift in the machine falls on both alike).
#
#   benches/ab.sh BASE_BINARY [VEHICLES] [KINDS] [ITERATIONS] [ROUNDS]
#
# BASE_BINARY is a `nadc` built from the baseline (for example
# `git stash; cargo build --release; cp "$CARGO_TARGET_DIR/release/nadc"
# /tmp/nadc-base; git stash pop`); the change is this checkout's release
# build. VEHICLES defaults to 200000 (about 3.2 M reads), KINDS to
# "geo5km24h geo1km1h vehicle vrm" (any `nadc bench search --kind`),
# ITERATIONS to 100 timed searches per kind and round (20 for 5 km / 24 h,
# as `bench_runs`), ROUNDS to 3. The store is loaded once by this
# checkout's build and compacted offline, so neither build meets
# compaction left over from the load; one untimed pass warms the page
# cache; then each round serves the baseline,
# then the change (each warming its block cache at start), and the same
# client (this checkout's) times each kind. Prints every round's p50 and
# p99, and the change's p50 over the baseline's, per round.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE="${1:?usage: benches/ab.sh BASE_BINARY [VEHICLES] [KINDS] [ITERATIONS] [ROUNDS]}"
VEHICLES="${2:-200000}"
KINDS="${3:-geo5km24h geo1km1h vehicle vrm}"
ITERATIONS="${4:-100}"
ROUNDS="${5:-3}"
BASE=$(realpath "$BASE")
source benches/common.sh
CHANGE="$NADC"
bench_workdir ab
bench_stop() { bench_unserve; }

bench_one_node_loaded "$VEHICLES" bench:analyst:AVON
bench_unserve
"$NADC" store usage --data "$work/data" --compact >/dev/null

# p50 and p99 of one build for one kind: "p50 p99" in ms.
measure() {
  local bin=$1 kind=$2 line
  NADC="$bin" bench_serve "$work/serve.log" -- --block-cache-mb 1024
  for _ in $(seq 1 3000); do grep -q "block cache warmed" "$work/serve.log" && break; sleep 0.2; done
  "$CHANGE" bench search --gen-dir "$work/gen" --kind "$kind" --iterations 10 >/dev/null
  line=$("$CHANGE" bench search --gen-dir "$work/gen" --kind "$kind" --iterations "$(bench_runs "$kind" "$ITERATIONS")" --seed 7)
  bench_unserve
  sed -n 's/.* p50 \([0-9.]*\) ms.* p99 \([0-9.]*\) ms.*/\1 \2/p' <<<"$line"
}

# One untimed pass of every kind first: the store was just compacted, so
# without it the first round's first build meets a cold page cache (seen:
# the baseline's first round up to 1.4 times its later ones).
for kind in $KINDS; do measure "$BASE" "$kind" >/dev/null; done

echo
echo "A/B on $reads reads: baseline $BASE, change $CHANGE ($(date -u +%Y-%m-%d))"
printf '%-12s %5s %12s %12s %12s %12s %8s\n' kind round "base p50" "base p99" "change p50" "change p99" ratio
for kind in $KINDS; do
  for round in $(seq 1 "$ROUNDS"); do
    read -r b50 b99 < <(measure "$BASE" "$kind")
    read -r c50 c99 < <(measure "$CHANGE" "$kind")
    printf '%-12s %5s %12s %12s %12s %12s %7.2fx\n' "$kind" "$round" "$b50" "$b99" "$c50" "$c99" \
      "$(echo "$c50 / $b50" | bc -l)"
  done
done
