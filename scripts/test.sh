#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing (scripts/setup.sh), then
# runs the unit and integration tests in a debug build (not the benchmarks; no doc tests).
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh daemon::` or `scripts/test.sh -- --nocapture`.
set -euo pipefail

# shellcheck source=scripts/prelude.sh
. "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"

# Build exactly the committed dependency versions, once Cargo.lock is committed.
locked=()
if git ls-files --error-unmatch Cargo.lock >/dev/null 2>&1; then
    locked=(--locked)
fi

cmd=(cargo test ${locked[@]+"${locked[@]}"} --lib --bins --tests "$@")
echo "test: ${cmd[*]}"
exec "${cmd[@]}"
