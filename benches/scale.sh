#!/usr/bin/env bash
# One node at scale: ingest, storage, search latency and memory on as many
# reads as the disk allows (100 million by default), nadc alone.
#
#   benches/scale.sh [VEHICLES] [DAYS] [ITERATIONS]
#
# Defaults: 620,000 vehicles over 10 days (about 100 million reads: the
# same traffic an hour as the 10-million-read runs, ten times the history,
# so that a search's window holds as many reads as at 10 million and what
# grows is what the indexes must skip), 300 timed searches per kind (the
# 5 km / 24 h search a tenth as often).
#
# Steps, each printed with its figure:
#   1. `nadc gen` writes the reads per force (about 160 bytes of CSV a read).
#   2. A release node with a 4 GiB block cache, as in benches/peer/postgis.sh;
#      a capture day at a time, every force's `nadc push` of the day at once
#      over mTLS, durable acks (as BOFs push in real time: each day ends and
#      settles in the node while the next loads). Timed from the first push
#      to the last acknowledgement; the node's VmHWM then.
#   3. A clean stop; `du -sb` of the data dir. Then `nadc store usage
#      --compact` offline (which settles the last day) and `du -sb` again:
#      the settled size.
#   4. The node restarted (its VmHWM from here is the searches' peak),
#      its block cache warmed, then `nadc bench search` per kind from this
#      client process, end to end over mTLS: once with the OS page cache
#      as the compaction left it, once after reading the store's files
#      into it (if they fit in available memory).
#
# Disk: about 160 bytes a read of CSV and up to 200 of store while loading
# and compacting: 36 GB free under /tmp for 100 million reads. Memory: the
# node stays near its cache size plus about 1 GiB.
set -euo pipefail
cd "$(dirname "$0")/.."
VEHICLES="${1:-620000}"
DAYS="${2:-10}"
ITERATIONS="${3:-300}"
case "$VEHICLES$DAYS$ITERATIONS" in *[!0-9]*)
  echo "usage: $0 [VEHICLES] [DAYS] [ITERATIONS] (whole numbers)" >&2; exit 2;;
esac
need_mb=$(( VEHICLES * DAYS * 16 * 360 / 1000000 ))
free_mb=$(df -Pm /tmp | awk 'NR == 2 { print $4 }')
if [ "$free_mb" -lt "$need_mb" ]; then
  echo "scale.sh: about $need_mb MB of disk needed under /tmp, only $free_mb MB free" >&2
  exit 1
fi
source benches/common.sh
bench_workdir scale
bench_stop() { bench_unserve; }
now() { date +%s.%N; }
log="$work/serve.log"

start=$(now)
bench_generate "$VEHICLES" "$DAYS"
gen_secs=$(echo "$(now) - $start" | bc -l)
csv_bytes=$(du -sb "$work/gen" | cut -f1)
"$NADC" pki init --out "$work/pki" --forces "$(IFS=,; echo "${FORCES[*]}")" --users bench:analyst:AVON >/dev/null

echo "== loading" >&2
bench_serve "$log" -- --block-cache-mb 4096
bench_split_days the_node
start=$(now)
bench_load_by_day the_node
load_secs=$(echo "$(now) - $start" | bc -l)
# Days the node settled while loading (the rest settle offline, below).
settled_days=$(grep -c 'day settled' "$log" || true)
settled_secs=$( { sed 's/\x1b\[[0-9;]*m//g' "$log" | grep 'day settled' || true; } | sed -n 's/.*secs=\([0-9.]*\).*/\1/p' | paste -sd+ | bc -l)
accepted=$(bench_accepted)
load_peak=$(bench_peak_mib)
kill -INT "$server"
wait "$server" || { echo "the node did not stop cleanly: $(tail -5 "$log")" >&2; exit 1; }
server=""
stopped_bytes=$(du -sb "$work/data" | cut -f1)
start=$(now)
"$NADC" store usage --data "$work/data" --compact >"$work/usage.txt"
compact_secs=$(echo "$(now) - $start" | bc -l)
compacted_bytes=$(du -sb "$work/data" | cut -f1)

echo "== searching" >&2
bench_serve "$work/serve2.log" -- --block-cache-mb 4096
for _ in $(seq 1 600); do grep -q "block cache warmed" "$work/serve2.log" && break; sleep 0.5; done
grep -q "block cache warmed" "$work/serve2.log" || { echo "the node did not warm its cache in 5 minutes" >&2; exit 1; }
warm_peak=$(bench_peak_mib)
export NADC_CERT="$work/pki/users/bench.crt" NADC_KEY="$work/pki/users/bench.key"
reads=$("$NADC" node info | sed -n 's/^reads: *//p')
[ "$reads" = "$accepted" ] || { echo "the node holds $reads reads, not the $accepted accepted" >&2; exit 1; }
# First with the OS page cache as the offline compaction left it (on this
# machine kind, mostly empty: reads not in the block cache go to disk),
# then again once the store's files have been read into it (as on a node
# that has run for a while with the store smaller than its memory).
echo "== searching, block cache warm, page cache cold" >&2
bench_searches "$ITERATIONS" | tee "$work/search-cold.txt" >&2
store_bytes=$(du -sb "$work/data" | cut -f1)
avail_bytes=$(( $(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo) * 1024 ))
if [ "$store_bytes" -lt $(( avail_bytes - (2 << 30) )) ]; then
  echo "== searching, block and page cache warm" >&2
  cat "$work/data"/*.sst >/dev/null
  bench_searches "$ITERATIONS" | tee "$work/search.txt" >&2
else
  echo "the store ($store_bytes bytes) does not fit in available memory: no page-cache-warm pass" >"$work/search.txt"
fi
search_peak=$(bench_peak_mib)

echo
echo "nadc at scale, $(date -u +%Y-%m-%d), $(nproc) cores: $accepted reads ($VEHICLES vehicles, $DAYS days, ${#FORCES[@]} forces)"
printf 'generate          %8.0f s, %.0f bytes of CSV a read\n' "$gen_secs" "$(echo "$csv_bytes / $accepted" | bc -l)"
printf 'ingest            %8.0f reads/s (%.0f s, %d pushes at once over mTLS, durable)\n' \
  "$(echo "$accepted / $load_secs" | bc -l)" "$load_secs" "${#FORCES[@]}"
echo "ingest by capture day (each day's pushes at once; a day settles in the node while the next loads):"
sed 's/^/  /' "$work/days.txt"
printf 'settled in loading %7d days, %.0f s in all (the last day settles offline, in the compaction below)\n' \
  "$settled_days" "${settled_secs:-0}"
printf 'bytes per read    %8.1f after a clean stop, %.1f compacted (%.0f s offline)\n' \
  "$(echo "$stopped_bytes / $accepted" | bc -l)" "$(echo "$compacted_bytes / $accepted" | bc -l)" "$compact_secs"
echo "peak RSS MiB      ingest $load_peak, searches $search_peak (4 GiB block cache; $warm_peak once warmed)"
echo "store usage (compacted):"
sed 's/^/  /' "$work/usage.txt"
echo "searches (nadc bench search), block cache warm, page cache cold:"
sed 's/^/  /' "$work/search-cold.txt"
echo "searches, block and page cache warm:"
sed 's/^/  /' "$work/search.txt"
