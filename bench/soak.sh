#!/usr/bin/env bash
# Soak test (issue 7): trafgend runs one stream at 100 kpps for a long time, and every minute
# we record frames sent, the rate, lateness p99, stalls, retries and the daemon's RSS.
# Goal: no crash, RSS growth <= 5 % (from the end of the first minute, once rings and flow
# tables are warm, to the end), a steady rate.
#
#   sudo bench/soak.sh                       # 30 minutes, model source, 100 kpps
#   SOAK_MINUTES=10 sudo bench/soak.sh       # shorter
#   SOAK_SOURCE=pcap sudo bench/soak.sh      # replay a 100k-frame capture made from the model
#   SOAK_PPS=50000 SOAK_CPU=0 SOAK_NICE=15 sudo bench/soak.sh
#   SOAK_WARM_UP=300 sudo bench/soak.sh      # model: start warm (trafgend's warm_up), at the
#                                            # steady rate instead of ramping up over minutes
#   TRAFGEND=path/to/trafgend TRAFGEN=path/to/trafgen sudo bench/soak.sh
#
# Two network namespaces are created here and joined by one veth (vtx 10.201.0.1 <-> vrx
# 10.201.0.2, IPv6 off); trafgend runs inside the first (its metrics endpoint on the
# namespace's own 127.0.0.1:9177) and sends on vtx; the peer only drops the frames. Nothing is
# sent outside the namespaces, which are deleted on exit (trap). Scrapes, the daemon's log
# and summary.{txt,json} stay in target/bench/soak/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench/soak
MINUTES=${SOAK_MINUTES:-30}
PPS=${SOAK_PPS:-100000}
SOURCE=${SOAK_SOURCE:-model}
NICE=${SOAK_NICE:-0}
TRAFGEND=${TRAFGEND:-$ROOT/target/release/trafgend}
TRAFGEN=${TRAFGEN:-$ROOT/target/release/trafgen}
TX=tgsoak$$tx
RX=tgsoak$$rx

[ "$(id -u)" -eq 0 ] || { echo "soak.sh: needs root (namespaces, AF_PACKET)" >&2; exit 1; }
for t in ip python3; do
    command -v $t >/dev/null || { echo "soak.sh: $t is missing (scripts/setup.sh installs the tools)" >&2; exit 1; }
done
case $SOURCE in model|pcap) ;; *) echo "soak.sh: SOAK_SOURCE must be model or pcap" >&2; exit 2;; esac
if [ ! -x "$TRAFGEND" ] || [ ! -x "$TRAFGEN" ]; then
    echo "soak.sh: building trafgen and trafgend (release) …" >&2
    cargo build --release --bins >&2
fi
rm -rf "$OUT"
mkdir -p "$OUT"

DPID=
. "$ROOT/bench/lib/veth.sh"
cleanup() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null || true
    veth_down $TX $RX
}
trap cleanup EXIT INT TERM
veth_up $TX $RX 10.201.0

if [ "$SOURCE" = model ]; then
    SRC="model = \"$ROOT/models/default\""
    EXTRA=""
    [ -n "${SOAK_WARM_UP:-}" ] && EXTRA="warm_up = $SOAK_WARM_UP"
else
    "$TRAFGEN" generate -m "$ROOT/models/default" -o "$OUT/soak.pcap" --packets 100000 --seed 7 --json >/dev/null
    SRC="pcap = \"$OUT/soak.pcap\""
    EXTRA="loop = 1000000"
fi
CPU_LINE=""
[ -n "${SOAK_CPU:-}" ] && CPU_LINE="cpu = $SOAK_CPU"
cat >"$OUT/trafgend.toml" <<EOF
[daemon]
metrics_listen = "127.0.0.1:9177"
log_format = "journald"

[[stream]]
name = "soak"
interface = "vtx"
$SRC
seed = 1
pps = $PPS
$EXTRA
$CPU_LINE
allowlist = ["10.0.0.0/8", "fd00::/8"]
EOF

# `nice` and `ip netns exec` both exec: $! is trafgend itself
nice -n "$NICE" ip netns exec $TX "$TRAFGEND" --config "$OUT/trafgend.toml" 2>"$OUT/trafgend.log" &
DPID=$!
scrape() { ip netns exec $TX "$TRAFGEN" status --metrics 2>/dev/null || true; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$DPID/status" 2>/dev/null || echo 0; }
alive() { kill -0 "$DPID" 2>/dev/null; }

# started once frames flow (the model's pilot run and warm-up come first: a long warm-up
# takes minutes of generation)
for _ in $(seq 36000); do
    alive || { echo "soak.sh: trafgend exited during start-up:" >&2; cat "$OUT/trafgend.log" >&2; exit 1; }
    f=$(scrape | awk '/^trafgend_frames_sent_total\{stream="soak"\}/ {print $2}')
    [ -n "${f:-}" ] && [ "${f%.*}" -gt 0 ] && break
    sleep 0.1
done
echo "soak: trafgend (pid $DPID, nice $NICE), $SOURCE source at $PPS pps on a veth in namespace $TX, $MINUTES min; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/header.txt"

record() { # N: scrape number; time, RSS and the metrics text
    local n=$1
    { echo "# t $(date +%s.%N) rss_kib $(rss_kib)"; scrape; } >"$OUT/scrape-$(printf %04d "$n").txt"
}
T0=$(date +%s)
record 0
sleep 10
record 1   # RSS 10 s in
for m in $(seq 1 "$MINUTES"); do
    # sleep to the minute mark from the start (scrapes take a moment)
    left=$(( T0 + 60 * m - $(date +%s) ))
    [ "$left" -gt 0 ] && sleep "$left"
    if ! alive; then
        echo "soak.sh: trafgend died in minute $m:" >&2
        tail -20 "$OUT/trafgend.log" >&2
        exit 1
    fi
    record $((m + 1))
    printf 'minute %d/%d: %s frames\n' "$m" "$MINUTES" "$(awk '/^trafgend_frames_sent_total\{stream="soak"\}/ {print $2}' "$OUT/scrape-$(printf %04d $((m + 1))).txt")" >&2
done

kill -TERM "$DPID"
status=0
wait "$DPID" || status=$?
DPID=
echo "trafgend exit status $status" >>"$OUT/header.txt"

python3 - "$OUT" "$PPS" "$status" <<'EOF' | tee "$OUT/summary.txt"
import glob, json, os, sys

out, pps, status = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
BOUNDS = [1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 5e-3, 1e-2, 1e-1, 1.0, float("inf")]

def parse(path):
    s = {"buckets": {}}
    for line in open(path):
        if line.startswith("# t "):
            _, _, t, _, rss = line.split()
            s["t"], s["rss_kib"] = float(t), int(rss)
        elif line.startswith("#") or not line.strip():
            continue
        else:
            series, value = line.rsplit(" ", 1)
            if 'stream="soak"' not in series:
                continue
            name = series.split("{")[0]
            if name == "trafgend_lateness_seconds_bucket":
                le = series.split('le="')[1].split('"')[0]
                s["buckets"][float("inf") if le == "+Inf" else float(le)] = float(value)
            else:
                s[name] = float(value)
    return s

def p99(a, b):
    """Prometheus histogram_quantile(0.99) over the frames between scrapes a and b."""
    d = [b["buckets"].get(x, 0) - a["buckets"].get(x, 0) for x in BOUNDS]
    total = d[-1]
    if total <= 0:
        return None
    rank, lo = 0.99 * total, 0.0
    for i, bound in enumerate(BOUNDS):
        if d[i] >= rank:
            if bound == float("inf"):
                return BOUNDS[-2]
            below = d[i - 1] if i else 0.0
            return lo + (bound - lo) * (rank - below) / max(d[i] - below, 1e-12)
        lo = bound
    return None

scrapes = [parse(p) for p in sorted(glob.glob(os.path.join(out, "scrape-*.txt")))]
frames = lambda s: s.get("trafgend_frames_sent_total", 0)
rows = []
minute_marks = [scrapes[0]] + scrapes[2:]   # scrape 1 is the 10-second RSS mark
for m, (a, b) in enumerate(zip(minute_marks, minute_marks[1:]), 1):
    dt = b["t"] - a["t"]
    rows.append({
        "minute": m,
        "frames": int(frames(b) - frames(a)),
        "pps": (frames(b) - frames(a)) / dt,
        "lateness_p99_us": None if p99(a, b) is None else p99(a, b) * 1e6,
        "stalls": int(b.get("trafgend_stalls_total", 0) - a.get("trafgend_stalls_total", 0)),
        "retries": int(b.get("trafgend_retries_total", 0) - a.get("trafgend_retries_total", 0)),
        "rss_mib": b["rss_kib"] / 1024,
    })
print("minute      frames        pps  late p99 (us)  stalls  retries  RSS MiB")
for r in rows:
    late = "-" if r["lateness_p99_us"] is None else "%.1f" % r["lateness_p99_us"]
    print("%6d %11d %10.0f %14s %7d %8d %8.1f" % (r["minute"], r["frames"], r["pps"], late, r["stalls"], r["retries"], r["rss_mib"]))
rss10 = scrapes[1]["rss_kib"] / 1024
rss_start = rows[0]["rss_mib"] if rows else rss10
rss_end = rows[-1]["rss_mib"] if rows else rss10
growth = (rss_end / rss_start - 1) * 100 if rss_start else 0.0
rates = [r["pps"] for r in rows]
mean = sum(rates) / len(rates) if rates else 0.0
spread = max(abs(x - mean) for x in rates) / mean * 100 if mean else 0.0
p99s = [r["lateness_p99_us"] for r in rows if r["lateness_p99_us"] is not None]
total = int(frames(scrapes[-1]))
summary = {
    "minutes": len(rows), "target_pps": pps, "frames_sent": total,
    "mean_pps": mean, "min_pps": min(rates, default=0), "max_pps": max(rates, default=0), "rate_spread_pct": spread,
    "rss_mib_10s": rss10, "rss_mib_start": rss_start, "rss_mib_end": rss_end, "rss_growth_pct": growth,
    "lateness_p99_us_per_minute": p99s, "exit_status": status,
    "stalls": int(scrapes[-1].get("trafgend_stalls_total", 0)), "retries": int(scrapes[-1].get("trafgend_retries_total", 0)),
    "send_errors": int(scrapes[-1].get("trafgend_send_errors_total", 0)), "minutes_table": rows,
}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
print()
print("frames sent   %d over %d min: mean %.0f pps (target %.0f), per minute %.0f .. %.0f (max %.2f %% from the mean)" % (total, len(rows), mean, pps, summary["min_pps"], summary["max_pps"], spread))
print("RSS           %.1f MiB at 10 s, %.1f MiB after minute 1, %.1f MiB at the end: %+.2f %% (goal <= 5 %%)" % (rss10, rss_start, rss_end, growth))
if p99s:
    print("lateness p99  per minute %.1f .. %.1f us (median %.1f us)" % (min(p99s), max(p99s), sorted(p99s)[len(p99s) // 2]))
print("errors        %d send errors, %d stalls, %d ENOBUFS/EAGAIN retries; trafgend exit status %d (%s)" % (summary["send_errors"], summary["stalls"], summary["retries"], status, "no crash" if status == 0 else "FAILED"))
steady = spread <= 5.0
print("rate          %s: every minute within %.2f %% of the run's mean (goal <= 5 %%); mean %+.2f %% from the target" % ("steady" if steady else "NOT steady", spread, (mean / pps - 1) * 100))
ok = status == 0 and growth <= 5 and summary["send_errors"] == 0 and steady
print("verdict       %s" % ("goal met" if ok else "goal NOT met"))
EOF
