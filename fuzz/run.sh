#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (scripts/test calls this):
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 30 s, every target)
#
# Installs cargo-fuzz when missing, seeds fuzz/corpus/<target> from the test
# tables (fuzz/seed.py; a corpus grown by earlier runs is kept), builds the
# targets with the nightly toolchain and runs them, one per core at a time
# (FUZZ_JOBS overrides). A crash fails the script and names the input
# libFuzzer saved; reproduce it with
# `cargo +nightly fuzz run -s none <target> <that file>`, then make it a
# regression test in the normal test suite (tests/fuzz_regressions.rs) with
# the fix.
#
# Built without a sanitizer (-s none): relay has no unsafe code, so
# AddressSanitizer would find little more than the panics, overflow checks
# (debug assertions are on) and the targets' own assertions do, and it
# slows both the build and every run. Oversized allocations are caught by the
# targets' own allocator (fuzz/src/lib.rs) instead of ASan's malloc limit.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-30}
shift || true

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "installing the nightly toolchain (cargo-fuzz needs it)" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --quiet
fi

python=python3
[ -x ../.venv/bin/python ] && python=../.venv/bin/python
"$python" seed.py corpus

cargo +nightly fuzz build -s none 2>&1 | grep -v '^\s*Compiling ' >&2 || true
# The pipe hides the build's status: this build is a no-op when it succeeded.
cargo +nightly fuzz build -s none >/dev/null 2>&1 || cargo +nightly fuzz build -s none

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    # Not `mapfile < <(...)`: a failed list must fail here, not run nothing.
    listed=$(cargo +nightly fuzz list)
    mapfile -t targets <<<"$listed"
    # An empty list reads as one empty name.
    [ -n "${targets[0]:-}" ] || targets=()
fi
# Fuzzing nothing is not a pass: CI must not go green by finding no target.
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz/run.sh: no fuzz target found (cargo fuzz list printed none)" >&2
    exit 1
fi

mkdir -p artifacts
# One target per core at a time; each writes its verdict to artifacts/<t>.status.
run_one() {
    local t=$1 log="artifacts/$1.log"
    # -timeout: an input running 10 s counts as a hang; -rss_limit_mb: a
    # run growing past 2 GiB as a leak.
    if cargo +nightly fuzz run -s none "$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        local runs cov
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1)
        echo "fuzz $t: ${runs:-?} runs in ${secs}s, ${cov:-cov: ?}, no crash" >&2
        echo ok >"artifacts/$t.status"
    else
        {
            echo "fuzz $t: FAILED; from $PWD/$log:"
            grep -A 20 -m1 'panicked at\|==fuzz==\|ERROR: libFuzzer' "$log" || tail -n 40 "$log"
            grep -o 'Test unit written to .*' "$log" || true
        } >&2
        echo failed >"artifacts/$t.status"
    fi
}
parallel=${FUZZ_JOBS:-$(nproc)}
for t in "${targets[@]}"; do
    rm -f "artifacts/$t.status"
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
    run_one "$t" &
done
wait
failed=()
for t in "${targets[@]}"; do
    [ "$(cat "artifacts/$t.status" 2>/dev/null)" = ok ] || failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets that crashed: ${failed[*]}" >&2
    exit 1
fi
