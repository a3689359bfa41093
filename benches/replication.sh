#!/usr/bin/env bash
# Replicated ingest against the embedded path, same data, same run
# (issue 22). The same `nadc gen` traffic is pushed, one `nadc push` per
# force at once, over mTLS:
#   1. embedded: into one release `nadc serve` (RocksDB, WAL synced per
#      batch);
#   2. replicated: into two release `nadc serve` nodes in replicated mode
#      (forces alternately to node-1 and node-2) on three NATS JetStream
#      servers (TLS, the stream R3). A batch is acknowledged once
#      JetStream's quorum holds it and the receiving node's replica has
#      applied it.
# Each push records every batch's acknowledgement latency (`--ack-log`);
# the figures are reads/s over the whole load, p50/p99 of the batch
# acknowledgement latency, and, replicated, how long after the last
# acknowledgement both replicas have applied the whole log.
#
#   benches/replication.sh [VEHICLES] [BATCH]
#
# VEHICLES defaults to 60000 (about a million reads); BATCH (reads per
# batch, `nadc push --batch-size`) to 1000. Everything runs on this one
# machine: the three NATS servers and both replicas share its cores.
set -euo pipefail
cd "$(dirname "$0")/.."
VEHICLES="${1:-60000}"
BATCH="${2:-1000}"
source benches/common.sh
source scripts/nats-cluster.sh
bench_workdir replication
NODES=(node-1 node-2)
declare -A pid=() url=()
bench_stop() {
  local n
  for n in "${!pid[@]}"; do kill -INT "${pid[$n]}" 2>/dev/null || true; done
  for p in "${NATS_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

bench_generate "$VEHICLES"
"$NADC" pki init --out "$work/pki" --forces "$(IFS=,; echo "${FORCES[*]}")" \
  --users bench:analyst:"${FORCES[0]}" --nodes node-1,node-2,nats >/dev/null
export NADC_CA="$work/pki/ca.crt"

# load NODE_OF: every force's cameras, then every force's reads pushed at
# once to the node NODE_OF prints for it, each batch's acknowledgement
# latency logged; prints the seconds the reads took.
load() {
  local pids=() f t0 t1
  for f in "${FORCES[@]}"; do
    NADC_NODE="$($1 "$f")" NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key" \
      "$NADC" cameras import "$work/gen/$f/cameras.csv" >/dev/null
  done
  rm -f "$work"/ack-*.log "$work"/push-*.log
  t0=$(date +%s.%N)
  for f in "${FORCES[@]}"; do
    NADC_NODE="$($1 "$f")" NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key" \
      "$NADC" push --batch-size "$BATCH" --ack-log "$work/ack-$f.log" "$work/gen/$f/reads.csv" \
      >"$work/push-$f.log" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

# light NODE: one BOF (the first force's) pushing 20,000 of its reads again
# under new read ids, one batch in flight: the acknowledgement latency with
# nothing queued. Prints p50 and p99 (ms).
light() {
  local f=${FORCES[0]}
  awk -F, -v tag="$2" 'NR == 1 { print; next } NR <= 20001 { $1 = $1 "-" tag; print }' OFS=, \
    "$work/gen/$f/reads.csv" >"$work/light.csv"
  rm -f "$work/light-ack.log"
  NADC_NODE="$1" NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key" \
    "$NADC" push --batch-size "$BATCH" --window 1 --ack-log "$work/light-ack.log" "$work/light.csv" >/dev/null
  sort -n "$work/light-ack.log" | awk '{ v[NR] = $1 } END {
    printf "%.1f %.1f", v[int(NR * 0.50 + 0.5)], v[int(NR * 0.99 + 0.5)] }'
}

# cpu PID: the CPU seconds (user + system) process PID has used.
cpu() {
  awk '{ printf "%.1f", ($14 + $15) / '"$(getconf CLK_TCK)"' }' "/proc/$1/stat"
}

# latency: p50 and p99 (ms) of every batch's acknowledgement latency.
latency() {
  sort -n "$work"/ack-*.log | awk '{ v[NR] = $1 } END {
    p50 = v[int(NR * 0.50 + 0.5)]; p99 = v[int(NR * 0.99 + 0.5)]
    printf "%.1f %.1f %d", p50, p99, NR }'
}

report() {
  local what=$1 secs=$2 n lat
  n=$(bench_accepted)
  read -r p50 p99 batches <<<"$(latency)"
  printf '%-11s %9d reads in %7.1f s: %8.0f reads/s; acknowledgement p50 %7.1f ms, p99 %7.1f ms (%d batches of %d)\n' \
    "$what" "$n" "$secs" "$(echo "$n / $secs" | bc -l)" "$p50" "$p99" "$batches" "$BATCH"
}

echo "== embedded: one node" >&2
bench_serve "$work/serve.log" -- --node-name node-1
secs=$(load the_node)
embedded=$(report embedded "$secs")
embedded_cpu="node $(cpu "$server") s"
read -r light_e50 light_e99 <<<"$(light "$NADC_NODE" light-e)"
bench_unserve
rm -rf "$work/data"

echo "== replicated: three NATS servers (R3), two replicas" >&2
nats_cluster "$work" "$work/pki" "${NODES[@]}"
for n in "${NODES[@]}"; do
  mkdir -p "$work/$n"
  cat >"$work/$n/node.toml" <<EOF
data_dir = "$work/$n/data"
listen = "127.0.0.1:0"

[tls]
ca = "$work/pki/ca.crt"
cert = "$work/pki/nodes/$n.crt"
key = "$work/pki/nodes/$n.key"

[replication]
servers = [$NATS_SERVERS]
EOF
  "$NADC" serve --config "$work/$n/node.toml" --addr-file "$work/$n/addr" 2>"$work/$n/serve.log" &
  pid[$n]=$!
  for _ in $(seq 1 600); do [ -s "$work/$n/addr" ] && break; sleep 0.1; done
  [ -s "$work/$n/addr" ] || { echo "$n did not start: $(tail -5 "$work/$n/serve.log")" >&2; exit 1; }
  url[$n]="https://$(cat "$work/$n/addr")"
done
as_bench() { NADC_CERT="$work/pki/users/bench.crt" NADC_KEY="$work/pki/users/bench.key" NADC_NODE="$1" "${@:2}"; }
# The stream exists once node-1 can see the log.
for _ in $(seq 1 600); do
  as_bench "${url[node-1]}" "$NADC" node info 2>/dev/null | grep -q '^log: *last position' && break
  sleep 0.1
done
declare -A node_of=()
i=0
for f in "${FORCES[@]}"; do node_of[$f]=${url[${NODES[$((i % 2))]}]}; i=$((i + 1)); done
alternate() { echo "${node_of[$1]}"; }
secs=$(load alternate)
t_acked=$(date +%s.%N)
replicated=$(report replicated "$secs")
replicated_cpu="node-1 $(cpu "${pid[node-1]}") s, node-2 $(cpu "${pid[node-2]}") s, NATS $(cpu "${NATS_PIDS[0]}") + $(cpu "${NATS_PIDS[1]}") + $(cpu "${NATS_PIDS[2]}") s"
# Both replicas at the end of the log.
for n in "${NODES[@]}"; do
  until as_bench "${url[$n]}" "$NADC" node info | grep -q ', 0 behind$'; do sleep 0.1; done
done
caught_up=$(echo "$(date +%s.%N) - $t_acked" | bc -l)
held=()
for n in "${NODES[@]}"; do held+=("$(as_bench "${url[$n]}" "$NADC" node info | sed -n 's/^reads: *//p')"); done
read -r light_r50 light_r99 <<<"$(light "${url[node-1]}" light-r)"

echo
echo "$embedded"
echo "$replicated"
printf 'replicated over embedded: %.2fx reads/s\n' \
  "$(echo "$(awk '{print $7}' <<<"$replicated") / $(awk '{print $7}' <<<"$embedded")" | bc -l)"
printf 'both replicas applied the whole log %.1f s after the last acknowledgement; they hold %s and %s reads\n' \
  "$caught_up" "${held[0]}" "${held[1]}"
echo "CPU used during the load: embedded: $embedded_cpu; replicated: $replicated_cpu"
echo "one BOF, one batch of $BATCH in flight (20,000 reads): acknowledgement p50/p99 embedded $light_e50/$light_e99 ms, replicated $light_r50/$light_r99 ms"
