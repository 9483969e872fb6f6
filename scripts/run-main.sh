#!/usr/bin/env bash
# The main job: installs what is missing (scripts/setup.sh), builds the release binaries, and
# generates a synthetic capture from the shipped model (models/default) into
# target/demo/synthetic.pcap (100,000 packets, seed 1), then inspects and validates it.
# Extra arguments go to `trafgen generate` (e.g. --packets 1000000 --pps 20000 --seed 7).
set -euo pipefail

# shellcheck source=scripts/prelude.sh
. "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"

cargo build --release --bins
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET_DIR/release/trafgen"
OUT="$TARGET_DIR/demo"
mkdir -p "$OUT"
"$BIN" generate -m models/default -o "$OUT/synthetic.pcap" "$@"
echo
"$BIN" inspect "$OUT/synthetic.pcap"
echo
# exits 3 (and so does this script) if any frame breaks a checksum or TCP rule
"$BIN" validate "$OUT/synthetic.pcap" | tail -1
