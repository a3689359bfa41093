#!/usr/bin/env bash
# Fan-out overhead with separate processes: three release `nadc serve`
# processes on 127.0.0.1 (node-1, node-2, node-3), each with its own RocksDB
# and node certificate, holding a third of Great Britain's forces each
# (south, middle and north, by their cameras' mean latitude), and a fourth,
# `one`, holding every force on its own (no peers): the single node the
# federation is compared with. All are loaded from the same `nadc gen` data
# by one `nadc push` per force and node.
#
# The same searches (`nadc bench search`, same seed, so the same inputs in
# the same order) are asked of each of the three alone (`--local`), of
# `one`, and nationally at node-1. Per search, the slowest of the three
# alone is "the slowest single node"; the fan-out overhead is the national
# p50/p99 over that one's. Then node-3 is killed and the national searches
# are asked again (partial answers, naming it).
#
# The two-area ALL search is left out: asked of one node alone it finds
# only vehicles seen in both areas on that node, a different question from
# the national one.
#
#   benches/federation.sh [VEHICLES] [ITERATIONS]
#
# VEHICLES defaults to 620000 (about 10 million reads); ITERATIONS to 300
# timed searches per kind and node (the 5 km / 24 h search a tenth as
# often). Figures are warm-cache: each node warms its block cache at start,
# and each run starts with 10 % untimed searches.
set -euo pipefail
cd "$(dirname "$0")/.."
VEHICLES="${1:-620000}"
ITERATIONS="${2:-300}"
FEDERATED=(node-1 node-2 node-3)
NODES=("${FEDERATED[@]}" one)
source benches/common.sh
bench_workdir federation
declare -A server=()
stop() {
  local pid="${server[$1]:-}"
  if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  server[$1]=""
}
bench_stop() { for n in "${NODES[@]}"; do stop "$n"; done; }

bench_generate "$VEHICLES"
# Forces from south to north by their cameras' mean latitude, cut in thirds.
mapfile -t ordered < <(
  for f in "${FORCES[@]}"; do
    awk -F, -v f="$f" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "lat") c = i; next }
      { s += $c; n++ } END { printf "%.6f %s\n", s / n, f }' "$work/gen/$f/cameras.csv"
  done | sort -n | cut -d' ' -f2
)
declare -A node_of=()
for i in "${!ordered[@]}"; do
  node_of[${ordered[$i]}]=${FEDERATED[$(( i * 3 / ${#ordered[@]} ))]}
done

"$NADC" pki init --out "$work/pki" --nodes "$(IFS=,; echo "${NODES[*]}")" \
  --forces "$(IFS=,; echo "${FORCES[*]}")" --users bench:analyst:AVON >/dev/null

# Each node's port: bound once on port 0, then kept for the configured run.
declare -A addr=()
start() { # NAME [CONFIG]
  local n=$1 listen="${addr[$1]:-127.0.0.1:0}"
  rm -f "$work/$n.addr"
  "$NADC" serve ${2:+--config "$2"} --data "$work/$n" --listen "$listen" \
    --tls-dir "$work/pki" --node-name "$n" --addr-file "$work/$n.addr" 2>"$work/$n.log" &
  server[$n]=$!
  for _ in $(seq 1 400); do [ -s "$work/$n.addr" ] && break; sleep 0.05; done
  addr[$n]=$(cat "$work/$n.addr")
}
for n in "${NODES[@]}"; do start "$n"; stop "$n"; done

# node-1 fans out to node-2 and node-3; they accept node-1's relays; `one`
# has no peers.
for n in "${NODES[@]}"; do
  {
    echo "data_dir = \"$work/$n\""
    echo "federation_deadline_ms = 5000"
    echo "[tls]"
    echo "ca = \"$work/pki/ca.crt\""
    echo "cert = \"$work/pki/nodes/$n.crt\""
    echo "key = \"$work/pki/nodes/$n.key\""
    for p in "${FEDERATED[@]}"; do
      if [ "$n" != one ] && [ "$p" != "$n" ] && { [ "$n" = node-1 ] || [ "$p" = node-1 ]; }; then
        printf '[[peers]]\nname = "%s"\naddress = "https://%s"\n' "$p" "${addr[$p]}"
      fi
    done
  } >"$work/$n.toml"
  start "$n" "$work/$n.toml"
done

regional() { echo "https://${addr[${node_of[$1]}]}"; }
whole() { echo "https://${addr[one]}"; }
echo "== loading the three regional nodes" >&2
started=$(date +%s)
bench_load regional
echo "loaded in $(( $(date +%s) - started )) s" >&2
echo "== loading the single node" >&2
started=$(date +%s)
bench_load whole
echo "loaded in $(( $(date +%s) - started )) s" >&2

# Restart, so each node warms its cache from a clean start as in service.
for n in "${NODES[@]}"; do stop "$n"; start "$n" "$work/$n.toml"; done
for n in "${NODES[@]}"; do
  for _ in $(seq 1 1200); do grep -q "block cache warmed" "$work/$n.log" && break; sleep 0.5; done
done

export NADC_CA="$work/pki/ca.crt" NADC_CERT="$work/pki/users/bench.crt" NADC_KEY="$work/pki/users/bench.key"
echo
echo "Fan-out across separate processes, $(date -u +%Y-%m-%d), $(nproc) cores, release, warm caches"
for n in "${NODES[@]}"; do
  forces=""
  for f in "${ordered[@]}"; do [ "${node_of[$f]}" = "$n" ] && forces="$forces $f"; done
  reads=$(NADC_NODE="https://${addr[$n]}" "$NADC" node info | sed -n 's/^reads: *//p')
  echo "$n: $reads reads;${forces:- every force}"
done
bench() { # NODE KIND TIMES [FLAGS...]
  local n=$1 kind=$2 times=$3
  shift 3
  NADC_NODE="https://${addr[$n]}" "$NADC" bench search --gen-dir "$work/gen" --kind "$kind" \
    --iterations "$(bench_runs "$kind" "$ITERATIONS")" --times "$times" "$@"
}
# p50 and p99 (ms) of a file of latencies, one a line.
percentiles() {
  sort -g "$1" | awk '{ v[NR] = $1 } END {
    i50 = int((NR - 1) * 0.50 + 0.5) + 1; i99 = int((NR - 1) * 0.99 + 0.5) + 1
    printf "%.2f %.2f", v[i50], v[i99] }'
}
summary=()
for kind in vrm fuzzy geo1km1h geo5km24h vehicle convoy; do
  echo
  echo "-- $kind"
  for n in "${FEDERATED[@]}"; do echo -n "$n alone: "; bench "$n" "$kind" "$work/t-$n" --local; done
  echo -n "one node holding every force: "; bench one "$kind" "$work/t-one"
  echo -n "national at node-1: "; bench node-1 "$kind" "$work/t-national"
  # The slowest of the three alone, search by search.
  paste "$work/t-node-1" "$work/t-node-2" "$work/t-node-3" |
    awk '{ m = $1; if ($2 > m) m = $2; if ($3 > m) m = $3; print m }' >"$work/t-slowest"
  read -r s50 s99 <<<"$(percentiles "$work/t-slowest")"
  read -r o50 o99 <<<"$(percentiles "$work/t-one")"
  read -r n50 n99 <<<"$(percentiles "$work/t-national")"
  summary+=("$(awk -v k="$kind" -v s50="$s50" -v s99="$s99" -v o50="$o50" -v o99="$o99" \
    -v n50="$n50" -v n99="$n99" 'BEGIN { printf "| %s | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f× / %.2f× | %.2f× / %.2f× |",
      k, s50, s99, n50, n99, o50, o99, n50 / s50, n99 / s99, n50 / o50, n99 / o99 }')")
done

echo
echo "-- node-3 killed: national searches at node-1 (partial, naming node-3)"
stop node-3
for kind in vrm geo1km1h; do echo -n "$kind: "; bench node-1 "$kind" "$work/t-dead"; done
echo
echo "| search | slowest single node, p50 / p99 ms | national over 3 nodes | one node holding all | national / slowest node | national / one node |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${summary[@]}"
echo
for n in node-1 node-2 one; do
  echo "$n peak RSS: $(awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/${server[$n]}/status")"
done
