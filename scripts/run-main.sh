#!/usr/bin/env bash
# The main job: installs what is missing (scripts/setup.sh), builds the release binaries and
# runs `trafgen demo --out target/demo`, which writes a capture made by the project and
# inspects it. Extra arguments go to `trafgen demo`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/setup.sh
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi

cargo build --release --bins
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
exec "$TARGET_DIR/release/trafgen" demo --out "$TARGET_DIR/demo" "$@"
