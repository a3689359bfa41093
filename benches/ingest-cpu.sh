#!/usr/bin/env bash
# Where ingest's CPU goes: one release node loaded by one `nadc push` per
# force at once over mTLS (durable acknowledgements, as in scale.sh), with
# the node's CPU time split by thread (the store's writer, tokio's workers
# and blocking pool, RocksDB's flush and compaction threads) and the
# clients' CPU beside it, per read.
#
#   benches/ingest-cpu.sh [VEHICLES] [CONFIG]
#
# VEHICLES defaults to 620000 (about 10 million reads over one day).
# CONFIG is an optional node config (a copy of deploy/node.toml with a
# setting changed, e.g. `clone_check = false` or `clone_recent_reads`
# under [alerts]); its data_dir, listen address and TLS paths are
# overridden by the script's own.
# The node runs with a 1 GiB block cache. Prints reads/s, the node's peak
# RSS, CPU seconds per thread kind, and node and client CPU microseconds a
# read.
set -euo pipefail
cd "$(dirname "$0")/.."
VEHICLES="${1:-620000}"
CONFIG="${2:-}"
source benches/common.sh
bench_workdir ingest-cpu
bench_stop() { bench_unserve; }

bench_generate "$VEHICLES"
"$NADC" pki init --out "$work/pki" --forces "$(IFS=,; echo "${FORCES[*]}")" --users bench:analyst:AVON >/dev/null
flags=(--block-cache-mb 1024)
if [ -n "$CONFIG" ]; then
  flags+=(--config "$(realpath "$CONFIG")")
fi
bench_serve "$work/serve.log" -- "${flags[@]}"
for f in "${FORCES[@]}"; do
  NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key" \
    "$NADC" cameras import "$work/gen/$f/cameras.csv" >/dev/null
done

tick=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
now() { date +%s.%N; }
s0=$(cpu_ticks "$server")
t0=$(now)
pids=()
for f in "${FORCES[@]}"; do
  (
    export NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key"
    TIMEFORMAT='%U %S'
    { time "$NADC" push "$work/gen/$f/reads.csv" >"$work/push-$f.log" 2>"$work/push-$f.err"; } 2>"$work/time-$f"
  ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
t1=$(now)
s1=$(cpu_ticks "$server")
reads=$(bench_accepted)
peak=$(bench_peak_mib)
secs=$(echo "$t1 - $t0" | bc -l)
node_s=$(echo "($s1 - $s0) / $tick" | bc -l)
client_s=$(cat "$work"/time-* | awk '{ s += $1 + $2 } END { print s }')

echo
echo "ingest CPU, $(date -u +%Y-%m-%d), $(nproc) cores: $reads reads ($VEHICLES vehicles, ${#FORCES[@]} pushes at once)${CONFIG:+, config $CONFIG}"
printf 'ingest            %8.0f reads/s (%.0f s)\n' "$(echo "$reads / $secs" | bc -l)" "$secs"
echo "node peak RSS     $peak MiB (1 GiB block cache)"
echo "node CPU seconds by thread (since the node started):"
for t in /proc/"$server"/task/*; do echo "$(cat "$t/comm") $(awk '{ print $14 + $15 }' "$t/stat")"; done |
  awk -v tick="$tick" '{ c[$1] += $2 } END { for (k in c) if (c[k] > 0) printf "  %-18s %8.1f\n", k, c[k] / tick }' | sort
printf 'node CPU          %8.2f us a read\n' "$(echo "$node_s * 1000000 / $reads" | bc -l)"
printf 'clients CPU       %8.2f us a read\n' "$(echo "$client_s * 1000000 / $reads" | bc -l)"
