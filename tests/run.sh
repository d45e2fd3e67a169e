#!/usr/bin/env bash
# The one command that installs what the tests need and runs every check:
#   bash tests/run.sh
# 1. tests/install.sh (apt/pip tools; fast when already installed)
# 2. builds the `tierlog` binary (debug by default: it shares every dependency artifact with the
#    test build, and the 100k-record end-to-end tests take ~4 s each against it anyway;
#    TIERLOG_PROFILE=release tests an optimised broker instead)
# 3. cargo nextest run --workspace --profile ci (unit + end-to-end tests, TIERLOG_BIN exported)
# 4. cargo clippy --workspace --all-targets -- -D warnings
# 5. cargo fmt --check
# Everything shares one target directory ($CARGO_TARGET_DIR, default <repo>/target).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
PROFILE="${TIERLOG_PROFILE:-debug}"

step() { printf '\n==== tests/run.sh: %s ====\n' "$*" >&2; }

step "install test dependencies"
bash "$ROOT/tests/install.sh"

step "build the tierlog binary ($PROFILE)"
if [ "$PROFILE" = "release" ]; then
  cargo build --release --locked -p tierlog-cli --features etcd --bin tierlog
else
  cargo build --locked -p tierlog-cli --features etcd --bin tierlog
fi
case "$PROFILE" in
  release) TIERLOG_BIN="$CARGO_TARGET_DIR/release/tierlog" ;;
  *) TIERLOG_BIN="$CARGO_TARGET_DIR/debug/tierlog" ;;
esac
export TIERLOG_BIN
[ -x "$TIERLOG_BIN" ] || { echo "tests/run.sh: $TIERLOG_BIN was not built" >&2; exit 1; }

status=0

step "cargo nextest run --workspace --profile ci"
cargo nextest run --locked --workspace --profile ci || status=1

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings || status=1

step "cargo fmt --check"
cargo fmt --all --check || status=1

if [ "$status" -ne 0 ]; then
  step "FAILED (see above)"
else
  step "all checks passed"
fi
exit "$status"
