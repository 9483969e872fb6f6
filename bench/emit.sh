#!/usr/bin/env bash
# Emission benchmark (issue 6), the anchors' method (shared/anchors/NOTES.md): two network
# namespaces created here, joined by one veth (vtx 10.200.0.1 <-> vrx 10.200.0.2, IPv6 off),
# the sender pinned to CPU 0 inside the TX namespace, tcpdump with nanosecond timestamps
# pinned to CPU 1 on the peer. Side by side in the same run, on the same veth and the same
# pcaps: trafgen (`trafgen send`, release build), tcpreplay (if installed) and the C sendmmsg
# sender from the anchors (compiled here with cc) as the kernel-path ceiling.
#
#   bench/emit.sh                  # top speed (64 B, mixed) and timing at 10k/100k pps
#   BENCH_REPS=3 bench/emit.sh     # repetitions per top-speed configuration (default 1)
#   BENCH_LONG=1 bench/emit.sh     # also 60 s at 10 kpps (drift)
#   TRAFGEN=path/to/trafgen bench/emit.sh   # another binary (default target/release/trafgen)
#   BENCH_TOP=0 BENCH_TIMING="cbr100k exp100k" bench/emit.sh   # only these timing runs
#
# Prints one line per run and a summary table; raw files stay in target/bench/emit/.
# Needs root. Nothing is sent outside the two namespaces, which are deleted on exit (trap).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/bench/emit
OUT=$ROOT/target/bench/emit
mkdir -p "$OUT"
TX=tgbench$$tx
RX=tgbench$$rx
REPS=${BENCH_REPS:-1}
TRAFGEN=${TRAFGEN:-$ROOT/target/release/trafgen}

[ "$(id -u)" -eq 0 ] || { echo "emit.sh: needs root (namespaces, AF_PACKET)" >&2; exit 1; }
for t in ip tcpdump cc python3 taskset; do
    command -v $t >/dev/null || { echo "emit.sh: $t is missing (scripts/setup.sh installs the tools)" >&2; exit 1; }
done
if [ ! -x "$TRAFGEN" ]; then
    echo "emit.sh: building trafgen (release) …" >&2
    cargo build --release --bin trafgen >&2
fi
HAVE_TCPREPLAY=0
command -v tcpreplay >/dev/null && HAVE_TCPREPLAY=1

. "$ROOT/bench/lib/veth.sh"
cleanup() {
    [ -n "${TDPID:-}" ] && kill "$TDPID" 2>/dev/null || true
    veth_down $TX $RX
}
trap cleanup EXIT INT TERM
veth_up $TX $RX 10.200.0 02:00:00:00:00:01 02:00:00:00:00:02

cc -O2 -o "$OUT/afpkt_bench" "$B/afpkt_bench.c"
cc -O2 -o "$OUT/cpu_probe" "$B/cpu_probe.c"

# pcaps: top speed (non-local destination MAC, as the C sender: the peer drops at L2),
# timing (peer MAC, seq numbers; CBR and exponential gaps)
gen() { python3 "$B/gen_pcap.py" "$@"; }
[ -f "$OUT/top64.pcap" ] || DST_MAC=0200000000fe FIXED_LEN=64 gen "$OUT/top64.pcap" 20000 cbr 1
[ -f "$OUT/topmix.pcap" ] || DST_MAC=0200000000fe gen "$OUT/topmix.pcap" 20000 cbr 1
[ -f "$OUT/cbr10k.pcap" ] || FIXED_LEN=64 gen "$OUT/cbr10k.pcap" 10000 cbr 100
[ -f "$OUT/cbr100k.pcap" ] || FIXED_LEN=64 gen "$OUT/cbr100k.pcap" 100000 cbr 10
[ -f "$OUT/exp10k.pcap" ] || FIXED_LEN=64 gen "$OUT/exp10k.pcap" 10000 exp 100
[ -f "$OUT/exp100k.pcap" ] || FIXED_LEN=64 gen "$OUT/exp100k.pcap" 100000 exp 10
if [ "${BENCH_LONG:-0}" = 1 ] && [ ! -f "$OUT/cbr10k60s.pcap" ]; then
    FIXED_LEN=64 gen "$OUT/cbr10k60s.pcap" 600000 cbr 100
fi

SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
row() { printf '%-34s %s\n' "$1" "$2" | tee -a "$SUMMARY"; }

txrun() { ip netns exec $TX taskset -c 0 "$@"; }

# --- top speed, no capture running (as the anchors' max-rate table) ---
LOOPS=100   # 20,000 frames x 100 = 2 M frames
[ "${BENCH_TOP:-1}" = 1 ] || REPS=0
for rep in $(seq "$REPS"); do
    r=$(txrun "$OUT/afpkt_bench" vtx sendmmsg 0 2000000 64 32 | grep -o "pps=[0-9]*" | cut -d= -f2 || true)
    row "top64  C sendmmsg (rep $rep)" "$r pps"
    if [ $HAVE_TCPREPLAY = 1 ]; then
        for f in top64 topmix; do
            r=$(txrun tcpreplay -q -i vtx --topspeed -K --loop=$LOOPS "$OUT/$f.pcap" 2>&1 | grep -E 'Rated' | grep -oE "[0-9.]+ pps" | head -1 || true)
            row "${f#top}  tcpreplay -K --topspeed (rep $rep)" "$r"
        done
    fi
    for f in top64 topmix; do
        j=$(txrun "$TRAFGEN" send -i vtx --pcap "$OUT/$f.pcap" --topspeed --loop $LOOPS --cpu 0 --json)
        r=$(python3 -c 'import json,sys; p=json.load(sys.stdin)["pacer"]; print("%.0f pps (%d frames, %d retries)" % ((p["frames"]-1)/p["seconds"], p["frames"], p["retries"]))' <<<"$j")
        row "${f#top}  trafgen --topspeed (rep $rep)" "$r"
    done
done

# --- timing: pcap schedule at x1, captured on the peer ---
capture_run() { # LABEL REF -- sender command...
    local label=$1 ref=$2; shift 3
    local cap=$OUT/$label.cap.pcap log=$OUT/$label.tcpdump.log
    ip netns exec $RX taskset -c 1 tcpdump -i vrx -nn -Q in -B 262144 -s 64 --time-stamp-precision=nano -w "$cap" udp >"$log" 2>&1 &
    TDPID=$!
    for _ in $(seq 50); do grep -q listening "$log" && break; sleep 0.1; done
    sleep 0.3
    txrun "$@" >"$OUT/$label.sender.log" 2>&1 || echo "sender failed: $(tail -3 "$OUT/$label.sender.log")" >&2
    sleep 2.2   # > libpcap's TPACKET_V3 block timeout: the last block is retired
    kill -INT $TDPID; wait $TDPID || true; TDPID=
    python3 "$B/analyze.py" "$ref" "$cap" pcap 1 > "$OUT/$label.json"
    python3 - "$OUT/$label.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
if 'iat_abs_err_us' not in r:
    print("captured %d of %d" % (r.get('cap_pkts', 0), r.get('ref_pkts', 0))); sys.exit()
print("%d/%d frames, %.0f pps, IAT err p50 %.2f / p99 %.2f us, sched (centred) p50 %.2f / p99 %.1f us, drift %.1f us" % (
    r['cap_pkts'], r['ref_pkts'], r['pps'], r['iat_abs_err_us']['med'], r['iat_abs_err_us']['p99'],
    r['sched_centered_abs_err_us']['med'], r['sched_centered_abs_err_us']['p99'], r['final_drift_us']))
EOF
}

# The bound each timing run is held to: just before it, a spin loop on CPU 0 records when
# the CPU goes away (cpu_probe.c), and cpu_bound.py lays the run's schedule over that record
# to give the IAT error p99 of ideal senders that are only stopped by the CPU being away
# (cpu_bound.py says how): what the VM allows, beside what trafgen reached.
cpu_bound() { # SCHEDULE.pcap LABEL
    taskset -c 0 "$OUT/cpu_probe" 1 "$OUT/$2.probe.txt"
    python3 "$B/cpu_bound.py" "$OUT/$2.probe.txt" "$1" > "$OUT/$2.bound.json"
    python3 - "$OUT/$2.bound.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
a, e, f = r['away_per_s'], r['ideal_iat_abs_err_us'], r['floor_iat_abs_err_us']
print("CPU 0 away >10us %d/s, >50us %d/s (%.1f %% of the time); IAT err p99: ideal burst sender %.2f us, floor %.2f us" % (
    a['>10us'], a['>50us'], 100 * r['away_share'], e['p99'], f['p99']))
EOF
}

TIMING="${BENCH_TIMING:-cbr10k cbr100k exp10k exp100k}"
[ "${BENCH_LONG:-0}" = 1 ] && TIMING="$TIMING cbr10k60s"
for f in $TIMING; do
    row "$f bound" "$(cpu_bound "$OUT/$f.pcap" bound_$f)"
    row "$f trafgen x1" "$(capture_run tg_$f "$OUT/$f.pcap" -- "$TRAFGEN" send -i vtx --pcap "$OUT/$f.pcap" --multiplier 1 --cpu 0 -q ${TRAFGEN_ARGS:-})"
    if [ $HAVE_TCPREPLAY = 1 ]; then
        row "$f tcpreplay x1" "$(capture_run tr_$f "$OUT/$f.pcap" -- tcpreplay -q -i vtx "$OUT/$f.pcap")"
    fi
done

echo
TRV=none
[ $HAVE_TCPREPLAY = 1 ] && TRV=$(tcpreplay -V 2>&1 | sed -n 1p)
echo "== summary ($(uname -r), $(nproc) CPUs; $TRV) =="
cat "$SUMMARY"
