#!/usr/bin/env bash
# Analysis run times: a release node loaded with generated reads, the
# analyses asked from a client process over mTLS (`nadc bench search`),
# p50/p90/p99 per kind, with the VRM timeline of the same inputs (same
# seed) as the baseline in the same run:
#   - hotspots-vrm: a VRM's reads over the generated period counted by H3
#     cell (resolution 7) and hour of the week; baseline: the VRM's timeline;
#   - hotspots-traffic: all traffic in the hour around a sampled read,
#     counted the same way (a scan of that read's whole day);
#   - alibi: could the sampled read's VRM have been within 1 km of a place
#     5 km away in the hour after it? Its reads 24 hours either side, and
#     the cameras there judged over a 28-day baseline;
#   - profile: the sampled VRM's subject profile over the generated period;
#   - network: the sampled VRM's associate network over the period, two
#     hops (each a convoy search);
#   - pattern: vehicles near at least two of 20 sampled reads taken as
#     incidents (500 m, +-30 minutes): two passes of the geographic index;
#   - sites: camera positioning for 200 incidents, each 2 km north of a
#     sampled read, with a 4 km road link through each of the first 20;
#   - results: the benchmark force's results from the period's start to
#     now (a pass over the alert log and the audit chain);
#   - transparency: the report for the last closed month (the same pass);
#   - camera-health: every camera in the hour before a sampled read, over
#     a 7-day baseline;
#   - retrospective: a sampled VRM added to a hotlist with a one-day
#     look-back (so the user is a hotlist manager too).
#
#   benches/analysis.sh [VEHICLES] [ITERATIONS] [NETWORK_ITERATIONS]
#
# VEHICLES defaults to 620000 (just over 10 million reads); ITERATIONS to
# 300 (the all-traffic count, a day's scan each, runs 20 times).
set -euo pipefail
cd "$(dirname "$0")/.."
VEHICLES="${1:-620000}"
ITERATIONS="${2:-300}"
# A network is two convoy searches and more: fewer of them.
NETWORK_ITERATIONS="${3:-$(( ITERATIONS / 5 > 0 ? ITERATIONS / 5 : 1 ))}"
source benches/common.sh
bench_workdir analysis
bench_stop() { bench_unserve; }

bench_one_node_loaded "$VEHICLES" bench:analyst+hotlist-manager:AVON
echo
echo "Analysis run times on $reads reads ($(nproc) cores, release, warm cache), $(date -u +%Y-%m-%d)"
"$NADC" bench search --gen-dir "$work/gen" --kind vrm --iterations "$ITERATIONS"
"$NADC" bench search --gen-dir "$work/gen" --kind hotspots-vrm --iterations "$ITERATIONS"
"$NADC" bench search --gen-dir "$work/gen" --kind hotspots-traffic --iterations 20
"$NADC" bench search --gen-dir "$work/gen" --kind alibi --iterations "$ITERATIONS"
"$NADC" bench search --gen-dir "$work/gen" --kind profile --iterations "$ITERATIONS"
"$NADC" bench search --gen-dir "$work/gen" --kind network --iterations "$NETWORK_ITERATIONS"
"$NADC" bench search --gen-dir "$work/gen" --kind pattern --iterations "$ITERATIONS"
"$NADC" bench search --gen-dir "$work/gen" --kind sites --iterations "$ITERATIONS"
"$NADC" bench search --gen-dir "$work/gen" --kind results --iterations 20
"$NADC" bench search --gen-dir "$work/gen" --kind transparency --iterations 20
"$NADC" bench search --gen-dir "$work/gen" --kind camera-health --iterations 20
"$NADC" bench search --gen-dir "$work/gen" --kind retrospective --iterations "$ITERATIONS"
