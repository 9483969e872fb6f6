#!/usr/bin/env bash
# The main job: installs what is missing (scripts/setup.sh), builds the release binaries and
# runs `trafgen demo --out target/demo`, which generates a capture through the frame stage,
# then inspects and validates it. Extra arguments go to `trafgen demo`.
set -euo pipefail

# shellcheck source=scripts/prelude.sh
. "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"

cargo build --release --bins
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
exec "$TARGET_DIR/release/trafgen" demo --out "$TARGET_DIR/demo" "$@"
