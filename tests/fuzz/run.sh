#!/usr/bin/env bash
# Runs every fuzz target (or those named as arguments) for a bounded time each, then prints each
# target's executions per second and whether it crashed. Not part of CI: a developer's tool.
#
#   tests/fuzz/run.sh                       # every target, 60 s each
#   FUZZ_SECONDS=300 tests/fuzz/run.sh normalise return_to
#
# Needs nightly Rust (`rustup toolchain install nightly`). With cargo-fuzz installed
# (`cargo install cargo-fuzz --locked`) the targets are built with AddressSanitizer; without it
# they are built by plain `cargo +nightly build` with libFuzzer's coverage instrumentation and run
# directly. The corpus grows in tests/fuzz/corpus/<target> (seeded from tests/fuzz/seeds/<target>),
# crashes land in tests/fuzz/artifacts/<target>, logs in tests/fuzz/logs; none of them is committed.
# A crash is reproduced with `cargo +nightly fuzz run --fuzz-dir tests/fuzz <target> <file>` (or
# `tests/fuzz/target/release/<target> <file>`), and becomes a regression test in
# tests/e2e/attacks/fuzz_regressions.rs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
seconds="${FUZZ_SECONDS:-60}"
all=(config cookies token jwks normalise route return_to navigation)
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=("${all[@]}")
fi

mkdir -p "$here/logs"
if cargo +nightly fuzz --version >/dev/null 2>&1; then
  mode=cargo-fuzz
  (cd "$root" && cargo +nightly fuzz build --fuzz-dir tests/fuzz)
  bin_dir="$here/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
else
  mode=plain
  export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
  (cd "$here" && cargo +nightly build --release --bins)
  bin_dir="$here/target/release"
fi
echo "fuzzing with $mode, ${seconds}s per target: ${targets[*]}"

summary=()
status=0
for t in "${targets[@]}"; do
  corpus="$here/corpus/$t"
  artifacts="$here/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "$here/seeds/$t" ]; then
    cp -n "$here/seeds/$t"/* "$corpus"/ 2>/dev/null || true
  fi
  log="$here/logs/$t.log"
  set +e
  "$bin_dir/$t" "$corpus" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" -max_len=8192 >"$log" 2>&1
  code=$?
  set -e
  runs="$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')"
  per_second="$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')"
  crashes="$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)"
  if [ "$code" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    status=1
    result="FOUND $crashes artifact(s), exit $code (see $log)"
  else
    result="no crash"
  fi
  summary+=("$(printf '%-12s %10s runs %8s exec/s  %s' "$t" "${runs:-?}" "${per_second:-?}" "$result")")
done
printf '%s\n' "${summary[@]}"
exit "$status"
