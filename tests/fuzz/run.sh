#!/usr/bin/env bash
# A short libFuzzer run of every target in fuzz/ (scripts/test.sh runs every tests/*/run.sh):
# FUZZ_SECONDS (default 20) per target, starting from the committed seeds in fuzz/corpus/<t>
# plus whatever earlier runs grew in fuzz/work/<t> (not committed). A crash, leak, timeout or
# failed assertion fails the target; libFuzzer leaves the input in fuzz/artifacts/<t>/.
# Needs the nightly toolchain and cargo-fuzz: both are installed if missing (idempotently);
# when that is impossible (no rustup, no network) the run is skipped with a message, not failed.
# Cost on a fresh machine: installing cargo-fuzz and the first build take minutes; SKIP_FUZZ=1
# skips the lot. The test command runs the four codec targets, which build only the protocol
# crate. The connection target pulls in the broker's whole dependency tree (an instrumented
# build of over half an hour on a busy 2-core machine), so it runs when asked for by name:
#   bash tests/fuzz/run.sh connection        FUZZ_SECONDS=300 bash tests/fuzz/run.sh frame
# Build flags: cargo-fuzz's release build with AddressSanitizer (its malloc hook is what
# catches a huge allocation whose pages are never touched), in fuzz/target like a long run.
# FUZZ_BUILD_FLAGS overrides them; "-O --codegen-units 16 --target-dir fuzz/target/short"
# should build faster (cargo-fuzz uses 1 codegen unit) but was not timed here.
set -uo pipefail
REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$REPO_ROOT"
SECS=${FUZZ_SECONDS:-20}
TARGETS=${*:-frame method properties table}
FEATURES=()
case " $TARGETS " in *" connection "*) FEATURES=(--features broker) ;; esac
read -r -a FLAGS <<<"${FUZZ_BUILD_FLAGS:--O}"
export PATH="$HOME/.cargo/bin:$PATH"

skip() { echo "SKIP fuzz: $*"; echo "0 passed, 0 failed (fuzzing skipped)"; exit 0; }
[ "${SKIP_FUZZ:-0}" = 1 ] && skip "SKIP_FUZZ=1"
command -v rustup >/dev/null || skip "no rustup to provide the nightly toolchain"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "installing the nightly toolchain (minimal profile)"
  rustup toolchain install nightly --profile minimal >/dev/null 2>&1 \
    || skip "the nightly toolchain could not be installed"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked >/dev/null 2>&1 || skip "cargo-fuzz could not be installed"
fi

# One build for all targets (the connection target needs the broker: feature `broker`).
start=$(date +%s)
if ! cargo +nightly fuzz build "${FLAGS[@]}" "${FEATURES[@]}" >/tmp/ottermq-fuzz-build.$$ 2>&1; then
  tail -30 /tmp/ottermq-fuzz-build.$$; rm -f /tmp/ottermq-fuzz-build.$$
  echo "0 passed, 1 failed (fuzz build)"; exit 1
fi
rm -f /tmp/ottermq-fuzz-build.$$
echo "fuzz build: $(( $(date +%s) - start ))s"

PASSED=0
FAILED=0
for t in $TARGETS; do
  mkdir -p "fuzz/work/$t"
  log=$(mktemp)
  # -rss_limit_mb: the default 2 GiB is more than a shared CI machine should give one target.
  if cargo +nightly fuzz run "${FLAGS[@]}" "${FEATURES[@]}" "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
       -max_total_time="$SECS" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "ok   fuzz $t: $runs(s), $cov, corpus $(ls "fuzz/work/$t" | wc -l) grown"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL fuzz $t"
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|Error' "$log" | head -20
    tail -20 "$log"
    FAILED=$((FAILED + 1))
  fi
  rm -f "$log"
done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
