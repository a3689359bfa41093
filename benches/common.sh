# Shared by the benchmark scripts (sourced from the repository root): a
# release `nadc`, a work directory removed on exit, generated data, a node
# started in the background, and the data loaded by one `nadc push` per
# force.
source scripts/bootstrap.sh
cargo build --release --bin nadc >&2
NADC="$CARGO_TARGET_DIR/release/nadc"

# bench_need_valgrind: installs valgrind with apt when missing (the
# callgrind profiles).
bench_need_valgrind() {
  command -v valgrind >/dev/null && return
  echo "== installing valgrind" >&2
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq && $sudo apt-get install -y -qq valgrind >&2
}

# bench_workdir NAME: a fresh directory in $work, removed at exit after the
# script's own `bench_stop`, if it defines one (to stop its nodes).
bench_workdir() {
  work=$(mktemp -d "/tmp/nadc-$1.XXXXXX")
  trap bench_exit EXIT
}
bench_exit() {
  if declare -F bench_stop >/dev/null; then bench_stop; fi
  rm -rf "$work"
}

# bench_generate VEHICLES [DAYS]: DAYS (default 1) of national traffic,
# ending yesterday so that every read is within retention, in $work/gen;
# its forces in FORCES, the first day in $day.
bench_generate() {
  local days=${2:-1}
  day=$(date -u -d "$days days ago" +%Y-%m-%d)
  echo "== generating $1 vehicles over $days day(s) from $day" >&2
  "$NADC" gen --out "$work/gen" --vehicles "$1" --days "$days" --day "$day" >&2
  # A force is a directory with cameras and reads; the generator's other
  # directories (journeys/: the planted alibi journeys) are not forces.
  FORCES=()
  for d in "$work/gen"/*/; do
    d=${d%/}
    if [ -f "$d/reads.csv" ] && [ -f "$d/cameras.csv" ]; then FORCES+=("$(basename "$d")"); fi
  done
}

# bench_serve LOG [WRAPPER...] [-- SERVE FLAGS...]: starts a node on
# $work/data and 127.0.0.1 port 0 (run under WRAPPER, e.g. valgrind, if
# given), its PID in $server; waits until it listens and points NADC_NODE
# and NADC_CA at it. Its log goes to LOG, started afresh.
bench_serve() {
  local log=$1 wrapper=() flags=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do wrapper+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  flags=("$@")
  rm -f "$work/addr"
  "${wrapper[@]}" "$NADC" serve --data "$work/data" --listen 127.0.0.1:0 --tls-dir "$work/pki" \
    --addr-file "$work/addr" "${flags[@]}" 2>"$log" &
  server=$!
  for _ in $(seq 1 6000); do [ -s "$work/addr" ] && break; sleep 0.05; done
  [ -s "$work/addr" ] || { echo "the node did not start: $(tail -5 "$log")" >&2; exit 1; }
  export NADC_NODE="https://$(cat "$work/addr")" NADC_CA="$work/pki/ca.crt"
}

# bench_unserve: stops the node bench_serve started (as SIGINT, cleanly).
bench_unserve() {
  if [ -n "${server:-}" ]; then kill -INT "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  server=""
}

# bench_load NODE_OF: every force's cameras and reads, pushed at once (one
# `nadc push` per force with its BOF certificate) to the node NODE_OF
# prints for the force (`echo "$NADC_NODE"` for a single node).
bench_load() {
  local pids=() f
  for f in "${FORCES[@]}"; do
    (
      export NADC_NODE="$($1 "$f")" NADC_CA="$work/pki/ca.crt"
      export NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key"
      "$NADC" cameras import "$work/gen/$f/cameras.csv" >/dev/null
      "$NADC" push "$work/gen/$f/reads.csv" >"$work/push-$f.log"
    ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

# bench_split_days NODE_OF: for bench_load_by_day, each force's cameras
# imported (to the node NODE_OF prints for it) and its reads.csv (in
# capture order) split by capture day under $work/days, then deleted
# (disk). Not part of the timed load.
bench_split_days() {
  local f
  for f in "${FORCES[@]}"; do
    mkdir -p "$work/days/$f"
    awk -F, -v dir="$work/days/$f" 'NR == 1 { h = $0; next }
      { out = dir "/" substr($3, 1, 10) ".csv"
        if (!(out in seen)) { print h > out; seen[out] = 1 }
        print > out }' "$work/gen/$f/reads.csv"
    rm "$work/gen/$f/reads.csv"
    (
      export NADC_NODE="$($1 "$f")" NADC_CA="$work/pki/ca.crt"
      export NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key"
      "$NADC" cameras import "$work/gen/$f/cameras.csv" >/dev/null
    )
  done
}

# bench_load_by_day NODE_OF: as bench_load, a capture day at a time, as
# BOFs push in real time: every force's reads of one day (from
# bench_split_days) pushed at once, then the next day's, so that each day
# ends, and settles in the node, while the next loads. The pushes' logs
# are push-FORCE-DAY.log; each day's time and rate go to
# $work/days.txt.
bench_load_by_day() {
  local pids=() f d days t0 t1 n
  days=$(cd "$work/days" && ls -- */ | grep '\.csv$' | sort -u)
  for d in $days; do
    pids=()
    t0=$(date +%s.%N)
    for f in "${FORCES[@]}"; do
      if [ -f "$work/days/$f/$d" ]; then
        (
          export NADC_NODE="$($1 "$f")" NADC_CA="$work/pki/ca.crt"
          export NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key"
          "$NADC" push "$work/days/$f/$d" >"$work/push-$f-${d%.csv}.log"
        ) &
        pids+=($!)
      fi
    done
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(date +%s.%N)
    n=$(cat "$work"/push-*-"${d%.csv}".log | sed -n 's/.*accepted \([0-9]*\),.*/\1/p' | paste -sd+ | bc)
    printf '%s %10d reads %6.0f s %8.0f reads/s\n' "${d%.csv}" "$n" "$(echo "$t1 - $t0" | bc -l)" \
      "$(echo "$n / ($t1 - $t0)" | bc -l)" | tee -a "$work/days.txt" >&2
    rm -f "$work/days"/*/"$d"
  done
}

# bench_one_node_loaded VEHICLES USERS: generated reads of VEHICLES
# vehicles loaded into one release node with every force's BOF pushing at
# once, and user `bench` (USERS: `nadc pki init --users` spec) set up as
# the client; sets `reads` to how many reads the node holds. (Not in a
# subshell: the node and its environment must outlive the call.)
bench_one_node_loaded() {
  bench_generate "$1"
  "$NADC" pki init --out "$work/pki" --forces "$(IFS=,; echo "${FORCES[*]}")" --users "$2" >/dev/null
  bench_serve "$work/serve.log"
  echo "== loading" >&2
  local start
  start=$(date +%s)
  bench_load the_node
  echo "loaded in $(( $(date +%s) - start )) s" >&2
  export NADC_CERT="$work/pki/users/bench.crt" NADC_KEY="$work/pki/users/bench.key"
  reads=$("$NADC" node info | sed -n 's/^reads: *//p')
}

# bench_runs KIND ITERATIONS: how many timed searches of KIND to run:
# ITERATIONS, but a tenth as many (at least 20) for 5 km / 24 h, whose
# answers are a large part of a town's day.
bench_runs() {
  if [ "$1" = geo5km24h ]; then echo $(( $2 / 10 > 20 ? $2 / 10 : 20 )); else echo "$2"; fi
}

# bench_searches ITERATIONS: every kind `nadc bench search` times, asked of
# $NADC_NODE with inputs from $work/gen; the figures on standard output.
bench_searches() {
  local kind
  for kind in vrm fuzzy geo1km1h geo5km24h geo-two-area-all vehicle convoy; do
    "$NADC" bench search --gen-dir "$work/gen" --kind "$kind" --iterations "$(bench_runs "$kind" "$1")"
  done
}

# The node bench_serve started, for bench_load.
the_node() { echo "$NADC_NODE"; }

# bench_accepted: the reads the node accepted, summed over the pushes'
# summaries in $work/push-*.log (fails if a force's summary is missing).
bench_accepted() {
  local f log line n total=0
  for f in "${FORCES[@]}"; do
    for log in "$work/push-$f.log" "$work/push-$f"-[0-9]*.log; do
      [ -f "$log" ] || continue
      line=$(grep -m1 '^pushed ' "$log" || true)
      n=$(sed -n 's/.*accepted \([0-9]*\),.*/\1/p' <<<"$line")
      [ -n "$n" ] || { echo "no push summary for $f in $log" >&2; return 1; }
      total=$((total + n))
    done
  done
  echo "$total"
}

# bench_peak_mib: the node's peak resident set so far (its VmHWM), in MiB.
bench_peak_mib() { echo $(( $(awk '/^VmHWM:/ { print $2 }' "/proc/$server/status") / 1024 )); }
