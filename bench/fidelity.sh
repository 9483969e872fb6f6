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
#
# Goals (issue 8): every metric <= 1.5x the floor or within its absolute tolerance; every
# structure metric <= 0.5x the baseline. JSON per capture is kept in target/bench/fidelity/.
set -euo pipefail
cd "$(dirname "$0")/.."

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

python3 - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
docs = {f[:-5]: json.load(open(os.path.join(out, f))) for f in sorted(os.listdir(out)) if f.endswith(".json")}
if not docs:
    sys.exit("no results")
names = [m["name"] for m in next(iter(docs.values()))["metrics"]]
def cell(m):
    s, f, b, tol = m.get("synthetic"), m.get("floor"), m.get("baseline"), m.get("tolerance")
    if s is None:
        return "-"
    rf = "ok" if (tol is not None and s <= tol) else (f"{s / f:.2f}" if f else "-")
    if m["class"] == "structure" and b:
        return f"{rf}|{s / b:.2f}"
    return rf
short = {n: n[:14] for n in docs}
all_met = all_total = all_reach = 0
print("synthetic/floor per metric ('ok' = within the absolute tolerance); structure metrics: floor-ratio|baseline-ratio")
print(f"{'metric':<30} " + " ".join(f"{short[n]:>14}" for n in docs) + f" {'meets goal':>11} {'floor meets':>11}")
for name in names:
    # `floor meets`: where real data itself (the first part) meets the structure goal (<= 0.5x
    # the baseline, or within tolerance): the cells where the goal is within reach at all
    row, met, total, reach = [], 0, 0, 0
    for n, d in docs.items():
        m = next(x for x in d["metrics"] if x["name"] == name)
        row.append(cell(m))
        s, f, b, tol = m.get("synthetic"), m.get("floor"), m.get("baseline"), m.get("tolerance")
        if s is None:
            continue
        total += 1
        floor_ok = (tol is not None and s <= tol) or (f is not None and f > 0 and s <= 1.5 * f)
        base_ok = m["class"] != "structure" or (b is not None and b > 0 and s <= 0.5 * b)
        met += floor_ok and base_ok
        reach += m["class"] != "structure" or (tol is not None and f is not None and f <= tol) or (b is not None and f is not None and b > 0 and f <= 0.5 * b)
    print(f"{name:<30} " + " ".join(f"{c:>14}" for c in row) + f" {met:>5}/{total:<5} {reach:>5}/{total:<5}")
    all_met += met
    all_total += total
    all_reach += reach
print(f"{'all metrics':<30} " + " ".join(f"{'':>14}" for _ in docs) + f" {all_met:>5}/{all_total:<5} {all_reach:>5}/{all_total:<5}")
EOF
