#!/usr/bin/env bash
# Real-time alerting and convoy benchmark: a release node loaded with
# generated reads (every read matched against the hotlists and clone-checked
# as it is ingested), then from client processes over mTLS:
#   - `nadc bench alerts`: hotlist hit latency, read acknowledged -> alert
#     received, p50/p99, while a steady background ingest load runs;
#   - `nadc bench convoy`: retrospective convoy search time for a planted
#     target with ~200 reads on the loaded store.
#
#   benches/alerts.sh [VEHICLES] [LOAD_RATE] [SECONDS]
#
# VEHICLES defaults to 620000 (just over 10 million reads); LOAD_RATE to
# 20000 background reads/s during the latency run; SECONDS to 30.
set -euo pipefail
cd "$(dirname "$0")/.."
VEHICLES="${1:-620000}"
RATE="${2:-20000}"
SECONDS_RUN="${3:-30}"
source benches/common.sh
bench_workdir alerts
bench_stop() { bench_unserve; }

bench_generate "$VEHICLES"
# One BOF per force the generated world has (27 across Great Britain).
"$NADC" pki init --out "$work/pki" --forces "$(IFS=,; echo "${FORCES[*]}")" \
  --users bench:analyst+hotlist-manager:AVON >/dev/null
bench_serve "$work/serve.log"
echo "== loading (hotlist matching and clone checks on)" >&2
start=$(date +%s%N)
bench_load the_node
end=$(date +%s%N)
export NADC_CERT="$work/pki/users/bench.crt" NADC_KEY="$work/pki/users/bench.key"
reads=$("$NADC" node info | sed -n 's/^reads: *//p')
echo
echo "Alerting benchmarks on $reads reads ($(nproc) cores, release), $(date -u +%Y-%m-%d)"
awk -v r="$reads" -v ns="$((end - start))" 'BEGIN { s = ns / 1e9;
  printf "load: %d reads in %.0f s (%.0f reads/s, one BOF per force over mTLS, durable acks, alerting on)\n", r, s, r / s }' 
"$NADC" bench alerts --node "$NADC_NODE" --tls-dir "$work/pki" --rate "$RATE" --seconds "$SECONDS_RUN"
"$NADC" bench convoy --node "$NADC_NODE" --tls-dir "$work/pki" --gen-dir "$work/gen" --day "$day"
echo "data directory: $(du -sh "$work/data" | cut -f1)"
