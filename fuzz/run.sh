#!/usr/bin/env bash
# Builds the nadc fuzz targets and runs each for a bounded time, one at a
# time, from a scratch copy of its seed corpus; prints executions per target.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60, every target)
#
# Works with the stable toolchain alone: cargo-fuzz needs nightly -Z flags
# (sanitizer, coverage instrumentation), which RUSTC_BOOTSTRAP=1 unlocks.
# Environment:
#   CARGO_TARGET_DIR   build dir (default: ~/.cache/nadc/fuzz-target)
#   NADC_FUZZ_CORPUS   keep corpora here between runs (default: a temporary dir)
#   NADC_FUZZ_SANITIZER  address (default) or none (if ASan does not link; still
#                        catches panics, overflow checks and timeouts)
# Exits non-zero if any target crashed or failed; the failing input is in
# fuzz/artifacts/<target>/.
set -euo pipefail

secs=${1:-60}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
all=(vrm read_rows read_validate keys search_params)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/nadc/fuzz-target}
sanitizer=${NADC_FUZZ_SANITIZER:-address}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cargo fuzz build -O -a -s "$sanitizer"

if [ -n "${NADC_FUZZ_CORPUS:-}" ]; then
    corpus_root=$NADC_FUZZ_CORPUS
else
    corpus_root=$(mktemp -d)
    trap 'rm -rf "$corpus_root"' EXIT
fi
logs=$(mktemp -d)

status=0
summary=()
for t in "${targets[@]}"; do
    corpus=$corpus_root/$t
    mkdir -p "$corpus"
    cp seeds/"$t"/* "$corpus"/
    echo "== $t: ${secs}s from $(ls "$corpus" | wc -l) inputs" >&2
    rc=0
    cargo fuzz run -O -a -s "$sanitizer" "$t" "$corpus" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 >"$logs/$t.log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
    [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$logs/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -1)
    size=$(ls "$corpus" | wc -l)
    if [ "$rc" -eq 0 ]; then
        result=clean
    else
        status=1
        result="FAILED (exit $rc)"
        grep -E "panicked at|^SUMMARY|Test unit written" "$logs/$t.log" >&2 || tail -20 "$logs/$t.log" >&2
    fi
    summary+=("$(printf '%-14s %6ss %12s execs %8s exec/s %6s corpus  %s' \
        "$t" "$secs" "${execs:-?}" "${rate:-?}" "$size" "$result")")
done

echo
printf '%s\n' "${summary[@]}"
echo "logs: $logs"
exit "$status"
