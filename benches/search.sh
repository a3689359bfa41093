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
VEHICLES="${1:-620000}"
ITERATIONS="${2:-300}"
source benches/common.sh
bench_workdir search
bench_stop() { bench_unserve; }

bench_one_node_loaded "$VEHICLES" bench:analyst:AVON
echo
echo "Search latency on $reads reads ($(nproc) cores, release, warm cache), $(date -u +%Y-%m-%d)"
bench_searches "$ITERATIONS"
echo "data directory: $(du -sh "$work/data" | cut -f1)"
