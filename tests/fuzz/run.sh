#!/usr/bin/env bash
# A short libFuzzer run of every target in fuzz/ (scripts/test.sh runs every tests/*/run.sh):
# FUZZ_SECONDS (default 60) per target, FUZZ_JOBS (default 2) targets at a time, starting from
# the committed seeds in fuzz/corpus/<t> plus whatever earlier runs grew in fuzz/work/<t> (not
# committed). A crash, a timeout, an allocation over the cap (fuzz/src/lib.rs) or a failed
# assertion fails the target; libFuzzer leaves the input in fuzz/artifacts/<t>/.
#   bash tests/fuzz/run.sh                   all five targets, 60 s each
#   FUZZ_SECONDS=300 bash tests/fuzz/run.sh frame connection
#
# Built with the toolchain cargo already has (stable is enough) and without cargo-fuzz: the
# build passes the instrumentation flags cargo-fuzz 0.13 passes (SanitizerCoverage with inline
# 8-bit counters, PC table, compare tracing, stack depth, `--cfg fuzzing`), with no sanitizer
# (`cargo fuzz --sanitizer none`). So a fresh machine installs no nightly toolchain and does not
# compile cargo-fuzz, and the broker's dependency tree is not built under AddressSanitizer. The
# price: no ASan (Rust's safe code does not need it for memory safety; the out-of-memory class
# it caught before is caught by the capped allocator instead). One build serves all targets,
# in its own target dir (fuzz/target/short), so long `cargo fuzz` runs keep theirs.
# Figures (build and run times, executions) are in docs/SECURITY.md. SKIP_FUZZ=1 skips it.
set -uo pipefail
REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$REPO_ROOT"
SECS=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-2}
TARGETS=${*:-connection frame method properties table}
TARGET_DIR=${FUZZ_TARGET_DIR:-fuzz/target/short}

skip() { echo "SKIP fuzz: $*"; echo "0 passed, 0 failed (fuzzing skipped)"; exit 0; }
[ "${SKIP_FUZZ:-0}" = 1 ] && skip "SKIP_FUZZ=1"
command -v cargo >/dev/null || skip "no cargo"
# libfuzzer-sys compiles libFuzzer (C++) in its build script.
command -v c++ >/dev/null || command -v g++ >/dev/null || command -v clang++ >/dev/null \
  || skip "no C++ compiler to build libFuzzer"
HOST=$(rustc -vV | sed -n 's/^host: //p')

# cargo-fuzz 0.13.2's flags (src/project.rs) for `--sanitizer none`, release with debug
# assertions off; --target keeps them off build scripts and proc macros, as cargo-fuzz does.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Cllvm-args=-sanitizer-coverage-stack-depth"
RUSTFLAGS=$(echo $RUSTFLAGS)
BUILD=(cargo build --manifest-path fuzz/Cargo.toml --target "$HOST" --release
       --config 'profile.release.debug="line-tables-only"' --target-dir "$TARGET_DIR")
# Only the connection target needs the broker (feature `broker`).
case " $TARGETS " in *" connection "*) BUILD+=(--features broker) ;; esac
for t in $TARGETS; do BUILD+=(--bin "$t"); done

start=$(date +%s)
buildlog=$(mktemp)
if ! "${BUILD[@]}" >"$buildlog" 2>&1; then
  tail -30 "$buildlog"; rm -f "$buildlog"
  echo "0 passed, 1 failed (fuzz build)"; exit 1
fi
rm -f "$buildlog"
echo "fuzz build: $(( $(date +%s) - start ))s"
BIN_DIR="$TARGET_DIR/$HOST/release"

# One target: its libFuzzer log goes to $2, libFuzzer's exit status to $2.rc.
fuzz_one() {
  local t=$1 log=$2
  mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
  # -rss_limit_mb: the default 2 GiB is more than a shared CI machine should give one target.
  "$BIN_DIR/$t" "fuzz/work/$t" "fuzz/corpus/$t" -artifact_prefix="fuzz/artifacts/$t/" \
    -max_total_time="$SECS" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 >"$log" 2>&1
  echo $? >"$log.rc"
}

declare -A LOGS
start=$(date +%s)
for t in $TARGETS; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  LOGS[$t]=$(mktemp)
  fuzz_one "$t" "${LOGS[$t]}" &
done
wait

PASSED=0
FAILED=0
for t in $TARGETS; do
  log=${LOGS[$t]}
  if [ "$(cat "$log.rc" 2>/dev/null)" = 0 ]; then
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
    echo "ok   fuzz $t: $runs runs in ${SECS}s, $cov, corpus $(ls "fuzz/work/$t" | wc -l)"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL fuzz $t"
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|==ottermq-fuzz==' "$log" | head -20
    tail -20 "$log"
    FAILED=$((FAILED + 1))
  fi
  rm -f "$log" "$log.rc"
done
echo "fuzz runs: $(( $(date +%s) - start ))s, $JOBS at a time"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
