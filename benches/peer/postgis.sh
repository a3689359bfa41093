#!/usr/bin/env bash
# Peer benchmark: nadc against what a competent PostGIS user would build for
# the same job, on the same generated reads, on the same machine, in the
# same run.
#
#   benches/peer/postgis.sh [VEHICLES] [ITERATIONS]
#
# VEHICLES defaults to 620000 (about 10 million reads; `nadc gen` makes
# about 16 reads per vehicle); ITERATIONS to 300 timed searches per kind
# (the 5 km / 24 h search runs a tenth as often, at least 20 times).
#
# Data: `nadc gen` writes one directory per force (cameras.csv, reads.csv)
# for yesterday. The forces are whatever directories it wrote; the columns
# of each file are taken from its header row, not assumed.
#
# nadc: a development PKI for every force plus one analyst; a release
# `nadc serve` on a fresh RocksDB data dir; each force's cameras registered,
# then every force's `nadc push` started at once over mTLS. Each batch is
# acknowledged only once durable (WAL synced) and indexed. Ingest time:
# first push started to last acknowledgement. The node is then stopped with
# SIGTERM (it flushes) and its data dir measured with `du -sb`; then
# compacted offline (`nadc store usage --compact`: the size the store
# settles at) and measured again. The node is restarted on the same data
# dir just before the searches, so it does not compete with PostgreSQL
# while PostgreSQL loads, with a 4 GiB block cache: the memory PostgreSQL
# gets as shared_buffers. Both caches are warmed before the searches
# (pg_prewarm; the node's own warm-up at start).
#
# PostGIS: a fresh cluster on a private port (55433) and socket, no TCP,
# fsync and synchronous_commit on as a production database runs,
# shared_buffers 4GB, max_wal_size 8GB, work_mem 64MB, effective_cache_size
# 16GB, random_page_cost 1.1 (SSD), jit off, and maintenance_work_mem 1GB
# for the index builds; shared_memory_type sysv (the same shared memory as
# the default mmap, but the kernel reports how much of it is resident: see
# Memory below). Extensions postgis, btree_gist and fuzzystrmatch. Table `reads`
# has a primary key on (force, read_id) for idempotency, the VRM normalised
# as nadc does it (upper case, only A-Z and 0-9) beside the raw text, and a
# geography point: the read's own position when it has one (mobile
# cameras), else its camera's, both rounded to microdegrees as nadc stores
# them, so boundary tests see the same coordinates. Indexes: GiST on the
# point, btree on (vrm, observed_at) and on (force, camera_id,
# observed_at), BRIN on time, and the composite GiST (geog, observed_at)
# through btree_gist. The PostGIS figures quoted in the project's issue
# were measured both with and without that composite; both indexes are
# kept here and the planner picks (it takes the composite for every search
# in space and time). The database is `nadc_bench`, with the C.UTF-8
# locale, so text sorts byte-wise as nadc sorts it; micro() and
# micro_point() are the rounding helpers.
#
# For the fuzzy VRM search, table `vrms` holds every distinct VRM with its
# confusable skeleton (vrm_skeleton(): translate() with nadc's default
# groups), btree-indexed on the skeleton and on it reversed, as nadc keeps
# a dictionary of distinct VRMs by skeleton; a statement trigger on
# `reads` adds the new VRMs of every insert in the same transaction. The
# search takes the candidates within one edit from it (prefix and suffix
# ranges, then levenshtein_less_equal), then their reads by the (vrm,
# observed_at) btree. pg_trgm is not used: a trigram similarity threshold
# cannot promise every plate one edit away (one edit changes up to three of
# a 7-character plate's trigrams), and the SQL must find exactly what nadc
# finds. The convoy analysis is a self-join on the (force, camera_id,
# observed_at) btree; it needs no index of its own.
#
# Two PostGIS ingest figures, both timed:
#  (b) bulk load then index, first: every force's CSV copied at once (one
#      session each, as nadc gets one push per force) into a temporary staging table and inserted into the
#      table without indexes, then the indexes built (two sessions, as the
#      machine has few cores; the btree session also fills `vrms` and then
#      creates its trigger). Time: first COPY started to last index
#      built. The table's size then (freshly built indexes) is reported too.
#      The tables are then truncated, so the disk never holds two copies.
#  (a) indexed table: every force at once (one session each) COPY into a
#      staging table and INSERT ... SELECT into the indexed table,
#      resolving positions from the cameras table and skipping duplicates
#      (on conflict do nothing), the trigger keeping `vrms` current. Time:
#      first COPY started to last commit. This is the figure comparable
#      with nadc, which indexes as it stores.
# Then `vacuum analyze`; the row count must equal nadc's accepted count.
# Storage: pg_total_relation_size of `reads` and of `vrms` (tables,
# indexes, TOAST).
#
# Searches: `nadc bench search --postgis` for each kind (VRM timeline, fuzzy
# VRM, the four geographic ones, convoy): the same searches with the same
# inputs as SQL against this database, one after the other, both timed
# from this client process (nadc over mTLS, PostgreSQL over its Unix
# socket); the answers must agree or the script fails: row counts, and
# for fuzzy searches the VRMs matched, for convoys every companion
# returned with its rank, co-occurrences and cameras, the companions
# before the limit and the pairs. PostgreSQL answers each search twice,
# in alternating order: as plain SQL, and audited as a lawful deployment
# must run it (the search and an INSERT of its audit row, who, purpose,
# case, the query and the rows returned, into `search_audit` in one
# transaction, committed synchronously before the rows are handed back,
# as nadc's governed path writes its audit entry before a search's rows
# leave the node). nadc is compared with the audited figure; the plain
# one is reported beside it.
#
# Memory: the node's peak resident set (VmHWM) at the end of its load and
# at the end of the searches (it is restarted between the two, so the
# second is the search process's, including its block-cache warm-up);
# PostgreSQL's peak, sampled twice a second, during each load and during
# the searches (from pg_prewarm on): its processes' private memory plus
# its resident shared memory (see the functions below for how, and why
# not the sum of Pss). Neither counts the OS page cache.
#
# Prints a table: metric, nadc, PostGIS, and the ratio (above 1: nadc does
# better). Needs root (apt installs bc, postgresql and PostGIS when
# missing; postgres runs as the `postgres` user) and, at 10 million reads,
# about 20 GB of free disk under /tmp.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bootstrap.sh
VEHICLES="${1:-620000}"
ITERATIONS="${2:-300}"
PGPORT=55433
DBNAME=nadc_bench

die() { echo "postgis.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root: it installs packages with apt and runs PostgreSQL as the postgres user"
case "$VEHICLES$ITERATIONS" in *[!0-9]*) die "usage: $0 [VEHICLES] [ITERATIONS] (whole numbers)";; esac

apt_updated=""
apt_install() {
  echo "== installing $* with apt-get" >&2
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v bc >/dev/null || apt_install bc
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true; }
PGBIN=$(pg_bin)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  apt_install postgresql
  PGBIN=$(pg_bin)
fi
[ -x "$PGBIN/initdb" ] || die "no PostgreSQL server found under /usr/lib/postgresql after installing it"
PGMAJOR=$(basename "$(dirname "$PGBIN")")
PGSHARE="/usr/share/postgresql/$PGMAJOR/extension"
[ -f "$PGSHARE/postgis.control" ] || apt_install "postgresql-$PGMAJOR-postgis-3"
[ -f "$PGSHARE/btree_gist.control" ] && [ -f "$PGSHARE/fuzzystrmatch.control" ] || apt_install postgresql-contrib
[ -f "$PGSHARE/postgis.control" ] || die "PostGIS for PostgreSQL $PGMAJOR is not installed (postgresql-$PGMAJOR-postgis-3)"
for ext in btree_gist fuzzystrmatch; do
  [ -f "$PGSHARE/$ext.control" ] || die "$ext for PostgreSQL $PGMAJOR is not installed (postgresql-contrib)"
done

cargo build --release --bin nadc >&2
NADC="$CARGO_TARGET_DIR/release/nadc"

# Disk: about 16 reads a vehicle; per read ~160 bytes of CSV, ~160 in nadc,
# ~650 in PostgreSQL, and the WAL may grow to max_wal_size (8 GB) besides.
need_mb=$(( VEHICLES * 16 * 970 / 1000000 ))
free_mb=$(df -Pm /tmp | awk 'NR == 2 { print $4 }')
if [ "$free_mb" -lt "$need_mb" ]; then
  die "about $need_mb MB of disk needed under /tmp for $VEHICLES vehicles, only $free_mb MB free"
elif [ "$free_mb" -lt $(( need_mb + 8192 )) ]; then
  echo "postgis.sh: warning: $free_mb MB free under /tmp; the data needs about $need_mb MB and PostgreSQL's WAL may take up to 8 GB more" >&2
fi
work=$(mktemp -d /tmp/nadc-postgis.XXXXXX)
chmod 755 "$work"
server=""
pg_started=""
sampler=""
cleanup() {
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; fi
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ -n "$pg_started" ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
# Waits for every pid given; fails naming the job that failed.
wait_all() {
  local what="$1" p
  shift
  for p in "$@"; do
    wait "$p" || die "$what failed (see above)"
  done
}

# Memory. nadc is one process: its peak resident set is the kernel's
# VmHWM, read before it stops. PostgreSQL is many processes sharing
# memory, so no one kernel figure is its peak: it is sampled twice a second
# while a phase runs (a few ms of CPU a sample), and once more at its end.
# A sample is the anonymous resident memory of the postmaster and of every
# backend and auxiliary process (RssAnon: heaps, temp buffers, sort and hash memory, caches;
# pages a backend still shares copy-on-write with the postmaster count once
# per process, a few MB each at most), the postmaster's file-backed
# resident pages once (the code every process shares), and the resident
# pages of its shared memory: the main segment (shared_buffers and the
# other shared structures; with shared_memory_type=sysv the kernel reports
# its resident bytes in /proc/sysvipc/shm) and any dynamic segments in
# /dev/shm. Not the sum of Pss over smaps_rollup: reading it walks the
# page tables of every process (about 15 ms per GiB of shared buffers a
# backend has touched, measured), which with 27 loading sessions would
# take most of a core from the load being timed; and it misses shared
# buffers only exited sessions touched (the loads, pg_prewarm), which stay
# resident though no live process maps them.
PAGE_BYTES=$(getconf PAGESIZE)
# (In bash arithmetic: mawk prints numbers past 2^31 as 2.1e+09.)
node_peak() { echo $(( $(awk '/^VmHWM:/ { print $2 }' "/proc/$server/status") * 1024 )); }
# Sets pg_mem (bytes, as above) and pg_shared (bytes, its shared part).
# Shell builtins only (statm's resident less shared pages is RssAnon), so
# that sampling costs little.
pg_memory() {
  local pm p line v f res shr children=() lines=() pages=0 file=0
  read -r pm <"$work/pg/postmaster.pid"
  read -r -a children <"/proc/$pm/task/$pm/children" || true
  for p in "$pm" "${children[@]}"; do
    # A backend may exit between the listing and the reading.
    { read -r _ res shr _ <"/proc/$p/statm"; } 2>/dev/null || continue
    pages=$((pages + res - shr))
  done
  mapfile -t lines <"/proc/$pm/status"
  for line in "${lines[@]}"; do
    case "$line" in RssFile:*) v=${line#RssFile:} file=${v% kB} ;; esac
  done
  pg_shared=0
  while read -r -a f; do
    if [ "${f[4]}" = "$pm" ]; then pg_shared=$((pg_shared + f[14])); fi
  done </proc/sysvipc/shm
  for f in /dev/shm/PostgreSQL.*; do
    if [ -e "$f" ]; then pg_shared=$((pg_shared + $(stat -c '%b * %B' "$f" 2>/dev/null || echo 0))); fi
  done
  pg_mem=$((pages * PAGE_BYTES + file * 1024 + pg_shared))
}
# Samples PostgreSQL's memory twice a second until sent SIGTERM, then
# writes the maxima (memory, its shared part) to $work/pgmem-PHASE.
pg_sampler() {
  local out="$work/pgmem-$1" max=0 max_shared=0
  trap 'echo "$max $max_shared" >"$out"; exit 0' TERM
  while :; do
    pg_memory
    if [ "$pg_mem" -gt "$max" ]; then max=$pg_mem; fi
    if [ "$pg_shared" -gt "$max_shared" ]; then max_shared=$pg_shared; fi
    # (wait, unlike a sleep in the foreground, lets the trap run at once.)
    sleep 0.5 &
    wait $!
  done
}
pg_sample_start() {
  pg_sampler "$1" &
  sampler=$!
}
# Stops phase $1's sampler, samples once more, and sets mem_max and
# shared_max.
pg_sample_stop() {
  kill -TERM "$sampler" 2>/dev/null || true
  wait "$sampler" || die "the memory sampler of phase $1 failed"
  sampler=""
  read -r mem_max shared_max <"$work/pgmem-$1"
  pg_memory
  if [ "$pg_mem" -gt "$mem_max" ]; then mem_max=$pg_mem; fi
  if [ "$pg_shared" -gt "$shared_max" ]; then shared_max=$pg_shared; fi
}
mib() { echo "$1 / 1048576" | bc -l; }

day=$(date -u -d yesterday +%Y-%m-%d)
echo "== generating $VEHICLES vehicles on $day" >&2
"$NADC" gen --out "$work/gen" --vehicles "$VEHICLES" --day "$day" >&2
FORCES=()
for d in "$work/gen"/*/; do
  d=${d%/}
  if [ -f "$d/reads.csv" ] && [ -f "$d/cameras.csv" ]; then FORCES+=("$(basename "$d")"); fi
done
[ ${#FORCES[@]} -gt 0 ] || die "nadc gen wrote no force directory (cameras.csv and reads.csv) under $work/gen"
echo "== forces: ${FORCES[*]}" >&2

# ---------------------------------------------------------------- nadc --
"$NADC" pki init --out "$work/pki" --forces "$(IFS=,; echo "${FORCES[*]}")" \
  --users "bench:analyst:${FORCES[0]}" >/dev/null
start_node() {
  rm -f "$work/addr"
  "$NADC" serve --data "$work/data" --listen 127.0.0.1:0 --tls-dir "$work/pki" \
    --block-cache-mb 4096 --addr-file "$work/addr" 2>>"$work/serve.log" &
  server=$!
  for _ in $(seq 1 600); do
    grep -q ':' "$work/addr" 2>/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; die "nadc serve exited at start"; }
    sleep 0.05
  done
  grep -q ':' "$work/addr" 2>/dev/null || die "nadc serve did not write its address within 30 s"
  export NADC_NODE="https://$(cat "$work/addr")"
}
stop_node() {
  kill -TERM "$server"
  wait "$server" || die "nadc serve did not stop cleanly (see $work/serve.log)"
  server=""
}
export NADC_CA="$work/pki/ca.crt"
echo "== nadc: loading" >&2
start_node
pids=()
for f in "${FORCES[@]}"; do
  NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key" \
    "$NADC" cameras import "$work/gen/$f/cameras.csv" >"$work/cameras-$f.log" &
  pids+=($!)
done
wait_all "nadc cameras import" "${pids[@]}"
start=$(now)
pids=()
for f in "${FORCES[@]}"; do
  NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key" \
    "$NADC" push "$work/gen/$f/reads.csv" >"$work/push-$f.log" &
  pids+=($!)
done
wait_all "nadc push" "${pids[@]}"
end=$(now)
accepted=0
for f in "${FORCES[@]}"; do
  line=$(grep -m1 '^pushed ' "$work/push-$f.log" || true)
  n=$(sed -n 's/.*accepted \([0-9]*\),.*/\1/p' <<<"$line")
  [ -n "$n" ] || die "no push summary for $f in $work/push-$f.log"
  echo "   $f: $line" >&2
  accepted=$((accepted + n))
done
[ "$accepted" -gt 0 ] || die "nadc accepted no reads"
nadc_load_peak=$(node_peak)
stop_node
nadc_secs=$(echo "$end - $start" | bc -l)
nadc_rate=$(echo "$accepted / $nadc_secs" | bc -l)
nadc_bytes=$(du -sb "$work/data" | cut -f1)
printf '   nadc: %d reads in %.2f s, data dir %d bytes after a clean stop, peak RSS %.0f MiB\n' \
  "$accepted" "$nadc_secs" "$nadc_bytes" "$(mib "$nadc_load_peak")" >&2
# The settled size: the store fully compacted offline.
start=$(now)
"$NADC" store usage --data "$work/data" --compact >"$work/usage.txt" || die "nadc store usage --compact failed"
compact_secs=$(echo "$(now) - $start" | bc -l)
nadc_compacted=$(du -sb "$work/data" | cut -f1)
printf '   nadc: compacted in %.2f s, data dir %d bytes\n' "$compact_secs" "$nadc_compacted" >&2
sed 's/^/     /' "$work/usage.txt" >&2

# ------------------------------------------------------------- PostGIS --
echo "== PostGIS: cluster" >&2
mkdir -p "$work/pg" "$work/sock"
chown postgres "$work/pg" "$work/sock"
chmod 700 "$work/pg"
chmod 755 "$work/sock"
chmod -R a+rX "$work/gen"
runuser -u postgres -- "$PGBIN/initdb" -D "$work/pg" -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/pg" -w -t 120 -l "$work/sock/pg.log" \
  -o "-p $PGPORT -k $work/sock -c listen_addresses='' -c shared_buffers=4GB -c max_wal_size=8GB \
      -c fsync=on -c synchronous_commit=on -c work_mem=64MB -c effective_cache_size=16GB \
      -c random_page_cost=1.1 -c jit=off -c maintenance_work_mem=1GB -c shared_memory_type=sysv" start >/dev/null \
  || { cat "$work/sock/pg.log" >&2; die "PostgreSQL did not start"; }
pg_started=1
PGCONN="host=$work/sock port=$PGPORT user=postgres dbname=$DBNAME"
psql() { runuser -u postgres -- "$PGBIN/psql" -X -h "$work/sock" -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -q "$@"; }
psql -d postgres -c "create database $DBNAME"
db() { psql -d "$DBNAME" "$@"; }
db <<'SQL'
create extension postgis;
create extension btree_gist;
create table cameras (force text, camera_id text, lat float8, lon float8, primary key (force, camera_id));
create table reads (
  force text not null, read_id text not null,
  vrm text not null,            -- normalised like nadc: upper-cased, only [A-Z0-9] kept
  vrm_raw text not null,
  observed_at timestamptz not null,
  camera_id text not null,
  geog geography(Point, 4326) not null,
  bearing real, lane smallint, confidence real, make text, model text, colour text, country text,
  patch_image_ref text, overview_image_ref text, candidates text);
-- Degrees rounded to whole microdegrees exactly as nadc does it (f64:
-- (x * 1e6).round(), halves away from zero, then / 1e6). round(float8)
-- rounds halves to even and a numeric cast keeps only 15 digits, so
-- neither is used.
create function micro(x float8) returns float8 language sql immutable parallel safe
  as $$ select sign(x * 1e6::float8) * floor(abs(x * 1e6::float8) + 0.5::float8) / 1e6::float8 $$;
create function micro_point(lat float8, lon float8) returns geography language sql immutable parallel safe
  as $$ select ST_SetSRID(ST_MakePoint(micro(lon), micro(lat)), 4326)::geography $$;
-- Fuzzy VRM search. A VRM's confusable skeleton: each character of nadc's
-- default groups (0ODQ 1I 2Z 5S 8B 6G) as its group's first, as nadc
-- compares them.
create extension fuzzystrmatch;
create function vrm_skeleton(v text) returns text language sql immutable parallel safe
  as $$ select translate(v, 'ODQIZSBG', '00012586') $$;
-- The distinct VRMs and their skeletons (nadc keeps the same: a dictionary
-- of distinct VRMs by skeleton), indexed on the skeleton and on it
-- reversed, for prefix and suffix ranges.
create table vrms (vrm text primary key,
  skel text not null generated always as (vrm_skeleton(vrm)) stored);
create index vrms_skel on vrms (skel);
create index vrms_skel_rev on vrms (reverse(skel));
-- Keeps vrms current as reads are inserted, in the inserting statement's
-- transaction, as nadc adds a new VRM to its dictionary in the read's own
-- write. In VRM order, so concurrent loads take shared keys in one order
-- and cannot deadlock.
create function vrms_add() returns trigger language plpgsql as $$
begin
  insert into vrms (vrm) select distinct vrm from new_reads order by vrm on conflict do nothing;
  return null;
end $$;
SQL
# The indexes (and the primary key) of `reads`, built after the bulk load
# in two sessions at once, created up front for the indexed-table load.
IDX1="create unique index reads_pkey on reads (force, read_id);
create index reads_vrm_time on reads (vrm, observed_at);
create index reads_camera_time on reads (force, camera_id, observed_at);"
IDX2="create index reads_geog on reads using gist (geog);
create index reads_geog_time on reads using gist (geog, observed_at);
create index reads_time_brin on reads using brin (observed_at);"
# The VRM dictionary of the bulk-loaded reads, built with the btree
# indexes, and its trigger for what is inserted afterwards.
DICT="insert into vrms (vrm) select distinct vrm from reads order by vrm;
create trigger reads_vrms after insert on reads referencing new table as new_reads
  for each statement execute function vrms_add();"

# Header of a CSV file as SQL column names (trimmed, lower case, as nadc
# reads it), one a line.
header_cols() { head -1 "$1" | tr -d '\r' | tr ',' '\n' | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' | tr 'A-Z' 'a-z'; }
# SQL for one force's file: a temporary staging table with the file's own
# columns, all text, and its COPY.
staging_sql() {
  local file="$1" table="$2" decl
  decl=$(header_cols "$file" | sed 's/.*/"&" text/' | paste -sd, -)
  printf 'create temp table %s (%s);\n\\copy %s from %s csv header\n' "$table" "$decl" "$table" "'$file'"
}
# The cell of column $2 in $1's header as SQL, or NULL when the file has no
# such column (the required ones were checked up front).
cell() {
  if header_cols "$1" | grep -qx "$2"; then echo "nullif(s.\"$2\", '')"; else echo "null"; fi
}
for f in "${FORCES[@]}"; do
  for c in read_id vrm observed_at camera_id lat lon; do
    header_cols "$work/gen/$f/reads.csv" | grep -qx "$c" || die "$work/gen/$f/reads.csv has no column $c"
  done
  for c in camera_id lat lon; do
    header_cols "$work/gen/$f/cameras.csv" | grep -qx "$c" || die "$work/gen/$f/cameras.csv has no column $c"
  done
done

echo "== PostGIS: cameras" >&2
pids=()
for f in "${FORCES[@]}"; do
  c="$work/gen/$f/cameras.csv"
  db <<SQL &
$(staging_sql "$c" cam_staging)
insert into cameras (force, camera_id, lat, lon)
select '$f', trim($(cell "$c" camera_id)), $(cell "$c" lat)::float8, $(cell "$c" lon)::float8
from cam_staging s on conflict do nothing;
SQL
  pids+=($!)
done
wait_all "loading cameras into PostgreSQL" "${pids[@]}"

# INSERT ... SELECT of one force's staged reads into `reads`: what nadc
# does to a read on ingest (trim, normalise the VRM, position from the read
# or else its camera, rounded to microdegrees, reads without either
# dropped).
insert_sql() {
  local f="$1" file="$2" conflict="$3" lat lon
  lat=$(cell "$file" lat)
  lon=$(cell "$file" lon)
  cat <<SQL
insert into reads (force, read_id, vrm, vrm_raw, observed_at, camera_id, geog, bearing, lane,
  confidence, make, model, colour, country, patch_image_ref, overview_image_ref, candidates)
select '$f', trim(s.read_id), upper(regexp_replace(s.vrm, '[^A-Za-z0-9]', '', 'g')), trim(s.vrm),
  s.observed_at::timestamptz, trim(s.camera_id),
  case when $lat is not null and $lon is not null then micro_point($lat::float8, $lon::float8)
       else micro_point(c.lat, c.lon) end,
  $(cell "$file" bearing)::real, $(cell "$file" lane)::smallint, $(cell "$file" confidence)::real,
  trim($(cell "$file" make)), trim($(cell "$file" model)), trim($(cell "$file" colour)),
  upper(trim($(cell "$file" country))), trim($(cell "$file" patch_image_ref)),
  trim($(cell "$file" overview_image_ref)), trim($(cell "$file" candidates))
from staging s left join cameras c on c.force = '$f' and c.camera_id = trim(s.camera_id)
where ($lat is not null and $lon is not null) or c.camera_id is not null
$conflict;
SQL
}
load_reads() {
  local conflict="$1" f r pids=()
  for f in "${FORCES[@]}"; do
    r="$work/gen/$f/reads.csv"
    db <<SQL &
$(staging_sql "$r" staging)
$(insert_sql "$f" "$r" "$conflict")
SQL
    pids+=($!)
  done
  wait_all "loading reads into PostgreSQL" "${pids[@]}"
}

echo "== PostGIS (b): bulk load, then index" >&2
db -c "checkpoint"
pg_sample_start b
start=$(now)
load_reads ""
db <<<"$IDX1
$DICT" >"$work/idx1.log" 2>&1 &
idx1=$!
db <<<"$IDX2" &
idx2=$!
wait "$idx2" || die "building the GiST/BRIN indexes failed"
if ! wait "$idx1"; then
  # Duplicate read ids (a BOF resending): keep the first, as nadc does.
  grep -q 'could not create unique index' "$work/idx1.log" || { cat "$work/idx1.log" >&2; die "building the btree indexes failed"; }
  echo "   duplicate read ids: removing them before the primary key" >&2
  db -c "delete from reads r using reads o where r.force = o.force and r.read_id = o.read_id and r.ctid > o.ctid"
  db <<<"$IDX1
$DICT"
fi
db -c "alter table reads add constraint reads_pkey primary key using index reads_pkey"
end=$(now)
pg_sample_stop b
pg_bulk_peak=$mem_max pg_bulk_shared=$shared_max
bulk_rows=$(db -t -A -c "select count(*) from reads")
bulk_secs=$(echo "$end - $start" | bc -l)
bulk_rate=$(echo "$bulk_rows / $bulk_secs" | bc -l)
db -c "vacuum analyze reads" -c "vacuum analyze vrms"
bulk_bytes=$(db -t -A -c "select pg_total_relation_size('reads') + pg_total_relation_size('vrms')")
printf '   PostGIS bulk: %d reads in %.2f s, %d bytes, peak memory %.0f MiB (shared %.0f MiB)\n' \
  "$bulk_rows" "$bulk_secs" "$bulk_bytes" "$(mib "$pg_bulk_peak")" "$(mib "$pg_bulk_shared")" >&2
db -c "truncate reads, vrms" -c "checkpoint"

echo "== PostGIS (a): into the indexed table" >&2
pg_sample_start a
start=$(now)
load_reads "on conflict do nothing"
end=$(now)
pg_sample_stop a
pg_load_peak=$mem_max pg_load_shared=$shared_max
db -c "vacuum analyze reads" -c "vacuum analyze vrms"
pg_rows=$(db -t -A -c "select count(*) from reads")
pg_bytes=$(db -t -A -c "select pg_total_relation_size('reads') + pg_total_relation_size('vrms')")
pg_secs=$(echo "$end - $start" | bc -l)
pg_rate=$(echo "$pg_rows / $pg_secs" | bc -l)
printf '   PostGIS indexed: %d reads in %.2f s, %d bytes, peak memory %.0f MiB (shared %.0f MiB)\n' \
  "$pg_rows" "$pg_secs" "$pg_bytes" "$(mib "$pg_load_peak")" "$(mib "$pg_load_shared")" >&2
[ "$pg_rows" = "$accepted" ] || die "row counts disagree: nadc accepted $accepted reads, PostGIS holds $pg_rows"
[ "$bulk_rows" = "$accepted" ] || die "row counts disagree: nadc accepted $accepted reads, the PostGIS bulk load held $bulk_rows"
pg_version=$("$PGBIN/postgres" --version | sed 's/^postgres (PostgreSQL) //')
postgis_version=$(db -t -A -c "select postgis_lib_version()")

# ------------------------------------------------------------ searches --
echo "== searches" >&2
# Warm caches on both sides, stated: PostgreSQL's shared buffers get the
# table and its indexes (pg_prewarm, as far as 4 GB holds them); the node
# fills its block cache as it starts (three quarters of its 4 GiB, newest
# data first) and the searches wait for it. PostgreSQL's memory is sampled
# from here to the end of the searches.
pg_sample_start searches
db -c "create extension if not exists pg_prewarm" \
  -c "select sum(pg_prewarm(c.oid)) from pg_class c where c.relname in ('reads', 'vrms') or c.oid in (select indexrelid from pg_index where indrelid in ('reads'::regclass, 'vrms'::regclass))" >/dev/null
# (serve.log also holds the first start's line: wait for one more.)
warmed() { grep -c "block cache warmed" "$work/serve.log" || true; }
before=$(warmed)
start_node
for _ in $(seq 1 600); do
  [ "$(warmed)" -gt "$before" ] && break
  sleep 0.5
done
[ "$(warmed)" -gt "$before" ] || die "the node did not warm its block cache within 5 minutes"
nadc_warm_peak=$(node_peak)
export NADC_CERT="$work/pki/users/bench.crt" NADC_KEY="$work/pki/users/bench.key"
node_reads=$("$NADC" node info | sed -n 's/^reads: *//p')
[ "$node_reads" = "$accepted" ] || die "the restarted node holds $node_reads reads, not the $accepted accepted"
peer=(--postgis "$PGCONN")
: >"$work/search.txt"
for kind in vrm fuzzy geo1km1h geo5km24h geo-two-area-all vehicle convoy; do
  n="$ITERATIONS"
  # A 5 km / 24 h search returns a large part of a town's day: fewer runs.
  if [ "$kind" = geo5km24h ]; then n=$(( ITERATIONS / 10 > 20 ? ITERATIONS / 10 : 20 )); fi
  "$NADC" bench search --gen-dir "$work/gen" --kind "$kind" --iterations "$n" "${peer[@]}" | tee -a "$work/search.txt" >&2
done
nadc_search_peak=$(node_peak)
pg_sample_stop searches
pg_search_peak=$mem_max pg_search_shared=$shared_max

# --------------------------------------------------------------- report --
per() { echo "$1 / $2" | bc -l; }
echo
echo "nadc vs PostGIS, $(date -u +%Y-%m-%d), $(nproc) cores, $accepted reads (${#FORCES[@]} forces loading at once, one push or psql session each, durable)"
echo "PostgreSQL $pg_version, PostGIS $postgis_version; indexes: gist(geog) and gist(geog, observed_at) both kept"
printf '%-50s %14s %14s %8s\n' "metric" "nadc" "PostGIS" "ratio"
printf '%-50s %14.0f %14.0f %7.2fx\n' "ingest reads/s, indexed table (a)" "$nadc_rate" "$pg_rate" "$(per "$nadc_rate" "$pg_rate")"
printf '%-50s %14.0f %14.0f %7.2fx\n' "ingest reads/s, bulk load then index (b)" "$nadc_rate" "$bulk_rate" "$(per "$nadc_rate" "$bulk_rate")"
printf '%-50s %14.2f %14.2f\n' "ingest seconds, (a)" "$nadc_secs" "$pg_secs"
printf '%-50s %14.2f %14.2f\n' "ingest seconds, (b)" "$nadc_secs" "$bulk_secs"
nadc_bpr=$(per "$nadc_bytes" "$accepted")
pg_bpr=$(per "$pg_bytes" "$pg_rows")
bulk_bpr=$(per "$bulk_bytes" "$bulk_rows")
printf '%-50s %14.0f %14.0f %7.2fx\n' "bytes per read, nadc vs (a)" "$nadc_bpr" "$pg_bpr" "$(per "$pg_bpr" "$nadc_bpr")"
nadc_cbpr=$(per "$nadc_compacted" "$accepted")
printf '%-50s %14.0f %14.0f %7.2fx\n' "bytes per read, nadc compacted vs (b)" "$nadc_cbpr" "$bulk_bpr" "$(per "$bulk_bpr" "$nadc_cbpr")"
echo "(nadc: du -sb of the data dir after a clean stop, then after \`nadc store usage --compact\`"
printf ' (%.1f s; the searches ran on the compacted store);\n' "$compact_secs"
echo " PostGIS: pg_total_relation_size of reads and of the VRM dictionary vrms, tables + indexes + TOAST, after vacuum analyze)"
printf '%-50s %14.0f %14.0f %7.2fx\n' "peak memory MiB, ingest, (a)" \
  "$(mib "$nadc_load_peak")" "$(mib "$pg_load_peak")" "$(per "$pg_load_peak" "$nadc_load_peak")"
printf '%-50s %14.0f %14.0f %7.2fx\n' "peak memory MiB, ingest, (b)" \
  "$(mib "$nadc_load_peak")" "$(mib "$pg_bulk_peak")" "$(per "$pg_bulk_peak" "$nadc_load_peak")"
printf '%-50s %14.0f %14.0f %7.2fx\n' "peak memory MiB, searches (caches warmed)" \
  "$(mib "$nadc_search_peak")" "$(mib "$pg_search_peak")" "$(per "$pg_search_peak" "$nadc_search_peak")"
echo "(nadc: VmHWM of \`nadc serve\`, which is restarted between the load and the searches; the searches'"
printf ' figure includes its block-cache warm-up, %.0f MiB once warmed;\n' "$(mib "$nadc_warm_peak")"
echo " PostgreSQL: sampled twice a second, the anonymous memory of all its processes, its code once,"
echo " and its resident shared memory (shared_buffers, the rest of the segment, dynamic segments),"
printf ' of which at most %.0f, %.0f and %.0f MiB. Neither counts the OS page cache)\n' \
  "$(mib "$pg_load_shared")" "$(mib "$pg_bulk_shared")" "$(mib "$pg_search_shared")"
echo "searches (nadc bench search --postgis):"
sed 's/^/  /' "$work/search.txt"
