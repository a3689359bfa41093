#!/usr/bin/env bash
# Ingest benchmark: nadc vs PostgreSQL, same generated reads, same machine,
# same run.
#
#   benches/ingest.sh [VEHICLES]        (default 60000: about 1 million reads)
#
# nadc: a release `nadc serve` on a fresh RocksDB data dir; one `nadc push`
# process per force BOF (27 forces, each with its own certificate) stream the
# forces' CSV files over mTLS at once; every batch is acknowledged only once
# durable (WAL synced) and indexed. Time: first push started to last
# acknowledgement.
#
# PostgreSQL: a fresh cluster on a private port and socket (fsync and
# synchronous_commit on, as a production database runs), the schema a
# competent user would build (primary key on force+read_id for idempotency,
# btree on (vrm, observed_at) and (force, camera_id, observed_at), GiST on
# the position, BRIN on time), cameras loaded first; then one psql
# session per force at once each COPY their force's CSV into a staging table and
# INSERT ... SELECT into the indexed table, resolving positions from the
# cameras table and skipping duplicates. Time: first COPY started to last
# commit.
#
# Prints the figures and the ratio. Needs: apt (installs postgresql if
# missing), runs postgres as the `postgres` user.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
VEHICLES="${1:-60000}"

command -v bc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bc >/dev/null; }
cargo build --release --bin nadc >&2
NADC="$CARGO_TARGET_DIR/release/nadc"
work=$(mktemp -d /tmp/nadc-bench.XXXXXX)
chmod 755 "$work"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ -n "${PGBIN:-}" ] && [ -d "$work/pg" ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== generating $VEHICLES vehicles of synthetic traffic" >&2
"$NADC" gen --out "$work/gen" --vehicles "$VEHICLES" >&2
# One BOF per force the generated world has (27 across Great Britain).
FORCES=()
for d in "$work/gen"/*/; do FORCES+=("$(basename "$d")"); done
"$NADC" pki init --out "$work/pki" --forces "$(IFS=,; echo "${FORCES[*]}")" >/dev/null

echo "== nadc" >&2
"$NADC" serve --data "$work/data" --listen 127.0.0.1:0 --tls-dir "$work/pki" --addr-file "$work/addr" 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 200); do [ -s "$work/addr" ] && break; sleep 0.05; done
export NADC_NODE="https://$(cat "$work/addr")" NADC_CA="$work/pki/ca.crt"
for f in "${FORCES[@]}"; do
  NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key" \
    "$NADC" cameras import "$work/gen/$f/cameras.csv" >/dev/null
done
start=$(date +%s.%N)
pids=()
for f in "${FORCES[@]}"; do
  NADC_CERT="$work/pki/bofs/$f.crt" NADC_KEY="$work/pki/bofs/$f.key" \
    "$NADC" push "$work/gen/$f/reads.csv" >"$work/push-$f.log" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
end=$(date +%s.%N)
accepted=0
for f in "${FORCES[@]}"; do
  n=$(sed -n 's/.*accepted \([0-9]*\),.*/\1/p' "$work/push-$f.log" | head -1)
  accepted=$((accepted + n))
done
kill -TERM "$server"; wait "$server" || true; server=""
nadc_secs=$(echo "$end - $start" | bc -l)
nadc_rate=$(echo "$accepted / $nadc_secs" | bc -l)
nadc_bytes=$(du -sb "$work/data" | cut -f1)
printf 'nadc: %d reads in %.2f s\n' "$accepted" "$nadc_secs" >&2

echo "== PostgreSQL" >&2
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$PGBIN" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
mkdir -p "$work/pg" "$work/sock"
chown postgres "$work/pg" "$work/sock"
chmod -R a+rX "$work/gen"
runuser -u postgres -- "$PGBIN/initdb" -D "$work/pg" -A trust >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/pg" -w -l "$work/sock/pg.log" \
  -o "-p 55432 -k $work/sock -c listen_addresses='' -c shared_buffers=2GB -c max_wal_size=8GB -c fsync=on -c synchronous_commit=on" start >/dev/null
psql() { runuser -u postgres -- "$PGBIN/psql" -h "$work/sock" -p 55432 -U postgres -v ON_ERROR_STOP=1 -q "$@"; }
psql <<'SQL'
create table cameras (force text, camera_id text, lat float8, lon float8, primary key (force, camera_id));
create table reads (
  force text not null, read_id text not null, vrm text not null, vrm_raw text not null,
  observed_at timestamptz not null, camera_id text not null, lat float8 not null, lon float8 not null,
  geom point not null, bearing real, lane smallint, confidence real, make text, model text, colour text,
  country text, patch_image_ref text, overview_image_ref text, candidates text,
  received_at timestamptz not null default now(),
  primary key (force, read_id));
create index reads_vrm_time on reads (vrm, observed_at);
create index reads_camera_time on reads (force, camera_id, observed_at);
create index reads_geom on reads using gist (geom);
create index reads_time_brin on reads using brin (observed_at);
SQL
for f in "${FORCES[@]}"; do
  awk -F, -v f="$f" 'NR > 1 { print f "," $1 "," $2 "," $3 }' "$work/gen/$f/cameras.csv"
done > "$work/gen/cameras-all.csv"
chmod a+r "$work/gen/cameras-all.csv"
psql -c "\copy cameras (force, camera_id, lat, lon) from '$work/gen/cameras-all.csv' csv"
start=$(date +%s.%N)
pids=()
for f in "${FORCES[@]}"; do
  psql <<SQL &
create temp table staging (read_id text, vrm text, observed_at text, camera_id text, lat text, lon text,
  bearing text, lane text, confidence text, make text, model text, colour text, country text,
  patch_image_ref text, overview_image_ref text, candidates text);
\copy staging from '$work/gen/$f/reads.csv' csv header
insert into reads (force, read_id, vrm, vrm_raw, observed_at, camera_id, lat, lon, geom, bearing, lane,
  confidence, make, model, colour, country, patch_image_ref, overview_image_ref, candidates)
select '$f', s.read_id, upper(regexp_replace(s.vrm, '[^A-Za-z0-9]', '', 'g')), s.vrm, s.observed_at::timestamptz,
  s.camera_id, coalesce(nullif(s.lat, '')::float8, c.lat), coalesce(nullif(s.lon, '')::float8, c.lon),
  point(coalesce(nullif(s.lon, '')::float8, c.lon), coalesce(nullif(s.lat, '')::float8, c.lat)),
  nullif(s.bearing, '')::real, nullif(s.lane, '')::smallint, nullif(s.confidence, '')::real,
  nullif(s.make, ''), nullif(s.model, ''), nullif(s.colour, ''), nullif(s.country, ''),
  nullif(s.patch_image_ref, ''), nullif(s.overview_image_ref, ''), nullif(s.candidates, '')
from staging s join cameras c on c.force = '$f' and c.camera_id = s.camera_id
on conflict do nothing;
SQL
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
end=$(date +%s.%N)
pg_rows=$(psql -t -A -c "select count(*) from reads")
pg_bytes=$(psql -t -A -c "select pg_total_relation_size('reads')")
pg_secs=$(echo "$end - $start" | bc -l)
pg_rate=$(echo "$pg_rows / $pg_secs" | bc -l)

if [ "$pg_rows" != "$accepted" ]; then
  echo "row counts disagree: nadc stored $accepted, PostgreSQL $pg_rows" >&2
  exit 1
fi
printf '\nIngest of %d reads (%d forces at once, durable), %s, %d cores\n' "$accepted" "${#FORCES[@]}" "$(date -u +%Y-%m-%d)" "$(nproc)"
printf '%-42s %14s %14s %8s\n' "metric" "nadc" "PostgreSQL" "ratio"
printf '%-42s %14.0f %14.0f %7.2fx\n' "reads/s (nadc push over mTLS vs COPY)" "$nadc_rate" "$pg_rate" "$(echo "$nadc_rate / $pg_rate" | bc -l)"
printf '%-42s %14.2f %14.2f\n' "seconds" "$nadc_secs" "$pg_secs"
printf '%-42s %14.0f %14.0f %7.2fx\n' "bytes on disk per read (no compaction)" "$(echo "$nadc_bytes / $accepted" | bc -l)" "$(echo "$pg_bytes / $pg_rows" | bc -l)" "$(echo "($pg_bytes / $pg_rows) / ($nadc_bytes / $accepted)" | bc -l)"
