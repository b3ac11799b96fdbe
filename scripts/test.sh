#!/usr/bin/env bash
# The one test command: installs what the tests need (idempotently), then runs every test.
#   bash scripts/test.sh            everything (what CI runs)
#   bash scripts/test.sh --deps-only   only install dependencies
# Knobs: SKIP_CLIPPY=1 skips fmt/clippy; RELEASE=1 runs the script-driven tests (and the crash
# test) against a release build instead of the dev-profile binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=$(date +%s)
# Everything builds in the dev profile (dependencies at opt-level 1, Cargo.toml): clippy, the
# binaries and the test binaries then share one compile of the dependency tree. A release build
# next to it was a second full compile with thin LTO, minutes on a fresh two-core machine.
PROFILE_FLAG=
PROFILE_DIR=debug
if [ "${RELEASE:-0}" = 1 ]; then PROFILE_FLAG=--release; PROFILE_DIR=release; fi

section() { printf '\n==== %s (%ss)\n' "$1" "$(( $(date +%s) - START ))"; }

install_deps() {
  section "dependencies"
  local need_apt=()
  command -v promtool >/dev/null || need_apt+=(prometheus)
  command -v prometheus >/dev/null || need_apt+=(prometheus)
  command -v docker-compose >/dev/null || need_apt+=(docker-compose)
  command -v chromium >/dev/null || need_apt+=(chromium)
  python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
  if [ ${#need_apt[@]} -gt 0 ]; then
    echo "apt-get install ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  fi
  if [ ! -x .venv-test/bin/python ]; then
    python3 -m venv .venv-test
  fi
  .venv-test/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
  for dir in tests/*/; do
    if [ -f "$dir/package.json" ]; then
      (cd "$dir" && if [ -f package-lock.json ]; then npm ci --silent --no-audit --no-fund; else npm install --silent --no-audit --no-fund; fi)
    fi
  done
}

install_deps
if [ "${1:-}" = "--deps-only" ]; then exit 0; fi

if [ "${SKIP_CLIPPY:-0}" != 1 ]; then
  section "cargo fmt --check"
  cargo fmt --all -- --check
  section "cargo clippy"
  cargo clippy --workspace --all-targets -- -D warnings
fi

section "cargo build"
cargo build --workspace --bins $PROFILE_FLAG
export OTTERMQ_BIN="$ROOT/target/$PROFILE_DIR/ottermq"
export REPO_ROOT="$ROOT"

section "cargo test (unit, property and integration tests with lapin and amqprs)"
# The test binaries build in the dev profile: with the release profile's thin LTO every one of
# some thirty test binaries took minutes to link on two cores. The script-driven tests below and
# the crash test run $OTTERMQ_BIN.
cargo test --workspace

FAILED=()
for runner in tests/*/run.sh; do
  [ -f "$runner" ] || continue
  section "$runner"
  if ! bash "$runner"; then FAILED+=("$runner"); fi
done

section "done"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "FAILED: ${FAILED[*]}"
  exit 1
fi
echo "all tests passed in $(( $(date +%s) - START ))s"
