#!/usr/bin/env bash
# Short, time-boxed run of every cargo-fuzz target (part of the test command), or a longer
# campaign: FUZZ_SECONDS=600 scripts/fuzz-smoke.sh [TARGET...]
#
# cargo-fuzz needs nightly-only compiler flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1. A crash fails the run and leaves the input in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-8}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz (one time, ~3 minutes)"
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

echo "== building fuzz targets"
(cd fuzz && cargo fuzz build)

for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus"
    # Seeds committed under fuzz/seeds/ (real front-end captures) start every run.
    seeds=()
    [ -d "fuzz/seeds/$t" ] && seeds=("seeds/$t")
    echo "== fuzzing $t for ${seconds}s"
    log="$(mktemp)"
    if (cd fuzz && cargo fuzz run "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1) >"$log" 2>&1; then
        grep -E '^stat::number_of_executed_units' "$log" | sed "s/^/   $t: /" || true
        rm -f "$log"
    else
        tail -n 60 "$log"
        echo "FAIL: fuzz target $t crashed; the input is in fuzz/artifacts/$t/"
        exit 1
    fi
done
echo "== fuzzing done: ${#targets[@]} targets"
