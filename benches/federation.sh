#!/usr/bin/env bash
# Fan-out overhead with separate processes: three release `nadc serve`
# processes on 127.0.0.1, each with its own RocksDB and node certificate,
# holding a third of Great Britain's forces each (south, middle and north,
# by their cameras' mean latitude), loaded from `nadc gen` by one `nadc push`
# per force. The same searches (`nadc bench search`, same seed, so the same
# inputs) are asked of each node alone (`--local`) and nationally at node-1;
# then node-3 is killed and the national searches are asked again (partial
# answers, naming it). The two-area ALL search is left out: asked of one
# node alone it finds only vehicles seen in both areas on that node, a
# different question from the national one.
#
#   benches/federation.sh [VEHICLES] [ITERATIONS]
#
# VEHICLES defaults to 620000 (about 10 million reads); ITERATIONS to 300
# timed searches per kind and node (the 5 km / 24 h search a tenth as
# often). Figures are warm-cache: each node warms its block cache at start,
# and each run starts with 10 % untimed searches.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
VEHICLES="${1:-620000}"
ITERATIONS="${2:-300}"
NODES=(node-1 node-2 node-3)

cargo build --release --bin nadc >&2
NADC="$CARGO_TARGET_DIR/release/nadc"
work=$(mktemp -d /tmp/nadc-federation.XXXXXX)
declare -A server=()
stop() {
  local pid="${server[$1]:-}"
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  server[$1]=""
}
cleanup() {
  for n in "${NODES[@]}"; do stop "$n"; done
  rm -rf "$work"
}
trap cleanup EXIT

day=$(date -u -d yesterday +%Y-%m-%d)
echo "== generating $VEHICLES vehicles on $day" >&2
"$NADC" gen --out "$work/gen" --vehicles "$VEHICLES" --day "$day" >&2
FORCES=()
for d in "$work/gen"/*/; do FORCES+=("$(basename "$d")"); done

# Forces from south to north by their cameras' mean latitude, cut in thirds.
mapfile -t ordered < <(
  for f in "${FORCES[@]}"; do
    awk -F, -v f="$f" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "lat") c = i; next }
      { s += $c; n++ } END { printf "%.6f %s\n", s / n, f }' "$work/gen/$f/cameras.csv"
  done | sort -n | cut -d' ' -f2
)
declare -A node_of=()
for i in "${!ordered[@]}"; do
  node_of[${ordered[$i]}]=${NODES[$(( i * 3 / ${#ordered[@]} ))]}
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

# node-1 fans out to node-2 and node-3; they accept node-1's relays.
for n in "${NODES[@]}"; do
  {
    echo "data_dir = \"$work/$n\""
    echo "federation_deadline_ms = 5000"
    echo "[tls]"
    echo "ca = \"$work/pki/ca.crt\""
    echo "cert = \"$work/pki/nodes/$n.crt\""
    echo "key = \"$work/pki/nodes/$n.key\""
    for p in "${NODES[@]}"; do
      if [ "$p" != "$n" ] && { [ "$n" = node-1 ] || [ "$p" = node-1 ]; }; then
        printf '[[peers]]\nname = "%s"\naddress = "https://%s"\n' "$p" "${addr[$p]}"
      fi
    done
  } >"$work/$n.toml"
  start "$n" "$work/$n.toml"
done

echo "== loading" >&2
started=$(date +%s)
pids=()
for f in "${FORCES[@]}"; do
  (
    export NADC_NODE="https://${addr[${node_of[$f]}]}" NADC_CA="$work/pki/ca.crt"
    export NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key"
    "$NADC" cameras import "$work/gen/$f/cameras.csv" >/dev/null
    "$NADC" push "$work/gen/$f/reads.csv" >"$work/push-$f.log"
  ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
echo "loaded in $(( $(date +%s) - started )) s" >&2

# Restart, so each node warms its cache from a clean start as in service.
for n in "${NODES[@]}"; do stop "$n"; start "$n" "$work/$n.toml"; done
for n in "${NODES[@]}"; do
  for _ in $(seq 1 1200); do grep -q "block cache warmed" "$work/$n.log" && break; sleep 0.5; done
done

export NADC_CA="$work/pki/ca.crt" NADC_CERT="$work/pki/users/bench.crt" NADC_KEY="$work/pki/users/bench.key"
echo
echo "Fan-out across three processes, $(date -u +%Y-%m-%d), $(nproc) cores, release, warm caches"
for n in "${NODES[@]}"; do
  forces=""
  for f in "${ordered[@]}"; do [ "${node_of[$f]}" = "$n" ] && forces="$forces $f"; done
  reads=$(NADC_NODE="https://${addr[$n]}" "$NADC" node info | sed -n 's/^reads: *//p')
  echo "$n: $reads reads;$forces"
done
bench() { # NODE KIND [FLAGS...]
  local n=$1 kind=$2
  shift 2
  local runs="$ITERATIONS"
  if [ "$kind" = geo5km24h ]; then runs=$(( ITERATIONS / 10 > 20 ? ITERATIONS / 10 : 20 )); fi
  NADC_NODE="https://${addr[$n]}" "$NADC" bench search --gen-dir "$work/gen" --kind "$kind" \
    --iterations "$runs" "$@"
}
for kind in vrm fuzzy geo1km1h geo5km24h vehicle convoy; do
  echo
  echo "-- $kind"
  for n in "${NODES[@]}"; do echo -n "$n alone: "; bench "$n" "$kind" --local; done
  echo -n "national at node-1: "; bench node-1 "$kind"
done

echo
echo "-- node-3 killed: national searches at node-1 (partial, naming node-3)"
stop node-3
for kind in vrm geo1km1h; do echo -n "$kind: "; bench node-1 "$kind"; done
for n in node-1 node-2; do
  echo "$n peak RSS: $(awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/${server[$n]}/status")"
done
