#!/usr/bin/env bash
# Fidelity benchmark (issue 8): for each capture in ../shared/data/pcap (or $TRAFGEN_DATA_DIR/pcap)
# with enough flows, `trafgen eval --split 0.5`: train on the first half, generate the second
# half's span, and compare synthetic, floor (first half) and the independent-marginals baseline
# with the held-out half. Prints one table (capture × metric: synthetic / floor ratio, and
# synthetic / baseline for the structure metrics) and a summary row per metric.
#
#   bench/fidelity.sh                 # every capture with >= 20 flows, 20 epochs
#   EPOCHS=40 MIN_FLOWS=50 bench/fidelity.sh
#   SEED=2 EVAL_ARGS="--warm-up 0" bench/fidelity.sh   # another seed; extra `trafgen eval` flags
#   BIN=/tmp/trafgen-before OUT=target/bench/before bench/fidelity.sh   # measure a kept binary
#   SEEDS="1 2 3 4 5 6" bench/fidelity.sh   # one run per seed (OUT/seed-N), then the cells met per
#                                           # seed and those failing where the floor meets the goal
#   bench/fidelity_report.py diff OUT_A OUT_B   # an A/B of two such runs: every cell that moved
#
# Goals (issue 8): every metric <= 1.5x the floor or within its absolute tolerance; every
# structure metric <= 0.5x the baseline. JSON per capture is kept in target/bench/fidelity/
# (OUT); bench/fidelity_report.py prints the tables.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${SEEDS:-}" ]; then
    # one run per seed, each as `SEED=N OUT=OUT/seed-N bench/fidelity.sh` (its table in OUT/seed-N.txt)
    out="${OUT:-target/bench/fidelity}"
    mkdir -p "$out"
    if [ -z "${BIN:-}" ]; then
        cargo build --release --bins -q
        BIN=target/release/trafgen
    fi
    for s in $SEEDS; do
        echo "seed $s …" >&2
        SEEDS='' SEED="$s" OUT="$out/seed-$s" BIN="$BIN" "$0" >"$out/seed-$s.txt"
    done
    exec python3 bench/fidelity_report.py seeds "$out"
fi

DATA="${TRAFGEN_DATA_DIR:-../shared/data}/pcap"
EPOCHS="${EPOCHS:-20}"
SEED="${SEED:-1}"
read -r -a EVAL_ARGS <<<"${EVAL_ARGS:-}"
MIN_FLOWS="${MIN_FLOWS:-20}"
OUT="${OUT:-target/bench/fidelity}"
mkdir -p "$OUT"
if [ ! -d "$DATA" ]; then
    echo "fidelity.sh: $DATA not found (set TRAFGEN_DATA_DIR)" >&2
    exit 1
fi
# BIN: a trafgen binary to measure (e.g. a copy kept for an A/B run); default: build this tree's
if [ -z "${BIN:-}" ]; then
    cargo build --release --bins -q
    BIN=target/release/trafgen
fi

mapfile -t captures < <(find "$DATA" -name '*.pcap' -o -name '*.pcapng' | sort)
for c in "${captures[@]}"; do
    flows=$("$BIN" inspect --json "$c" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["flows"]["total"])' || echo 0)
    name=$(basename "$c")
    if [ "$flows" -lt "$MIN_FLOWS" ]; then
        echo "skip $name: $flows flows (< $MIN_FLOWS)" >&2
        continue
    fi
    echo "eval $name ($flows flows) …" >&2
    if ! "$BIN" eval --split 0.5 "$c" --epochs "$EPOCHS" --seed "$SEED" "${EVAL_ARGS[@]}" --json >"$OUT/$name.json" 2>"$OUT/$name.log"; then
        echo "  failed: $(tail -1 "$OUT/$name.log")" >&2
        rm -f "$OUT/$name.json"
    fi
done

python3 bench/fidelity_report.py table "$OUT"
