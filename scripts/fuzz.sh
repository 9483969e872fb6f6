#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (see fuzz/README.md), one after another, each for
# SECONDS (default 60), at the lowest CPU priority, one libFuzzer job each.
#
#   scripts/fuzz.sh                  # every target, 60 s each
#   scripts/fuzz.sh capture 1800     # one target, 30 minutes
#   scripts/fuzz.sh all 1800         # every target, 30 minutes each
#   scripts/fuzz.sh build            # build and write the seeds only
#
# Needs the nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz`) and the .venv with libtorch that scripts/setup.sh makes.
# Corpora grow in fuzz/corpus/<target>, crashes land in fuzz/artifacts/<target>, and each
# run's libFuzzer output in fuzz/logs/<target>.log, whose last lines (executions, cov, ft,
# corpus size) are printed at the end, with the CPU time of the run (appended to
# fuzz/logs/<target>.log.time, one line per run). Extra libFuzzer flags: FUZZ_FLAGS="-jobs=2 ...".
# Exits non-zero when a target found a crash.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGETS=(capture pcap_differential config model)
target=${1:-all}
seconds=${2:-60}

command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }
cargo +nightly --version >/dev/null 2>&1 || { echo "fuzz: the nightly toolchain is missing: rustup toolchain install nightly" >&2; exit 2; }

# One build configuration for every target (each other one rebuilds the whole crate and
# libtorch's bindings, ~30 minutes on 2 cores): AddressSanitizer, debug assertions (overflow
# and UB checks) on; see fuzz/README.md.
build_flags=(--fuzz-dir fuzz)
bin_dir=fuzz/target/x86_64-unknown-linux-gnu/release

echo "fuzz: building (cargo +nightly fuzz build ${build_flags[*]})"
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} nice -n 15 cargo +nightly fuzz build "${build_flags[@]}"
"$bin_dir/seeds"
[[ $target == build ]] && exit 0

case $target in
    all) run=("${TARGETS[@]}") ;;
    *) [[ " ${TARGETS[*]} " == *" $target "* ]] || { echo "fuzz: no target '$target' (${TARGETS[*]})" >&2; exit 2; }
       run=("$target") ;;
esac

flags_for() {
    case $1 in
        capture | pcap_differential) echo "-max_len=65536 -timeout=30 -rss_limit_mb=3072" ;;
        config) echo "-max_len=8192 -timeout=10 -rss_limit_mb=3072 -dict=fuzz/dicts/toml.dict" ;;
        # the largest model file is ~90 KB; libtorch makes the process large
        model) echo "-max_len=131072 -timeout=60 -rss_limit_mb=4096 -dict=fuzz/dicts/toml.dict" ;;
    esac
}

mkdir -p fuzz/logs
status=0
for t in "${run[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log=fuzz/logs/$t.log
    echo "fuzz: $t for $seconds s (log: $log)"
    # LeakSanitizer off: its scan of libtorch's heap after inputs took 3/4 of the time, and
    # leaks are not what these targets look for (FUZZ_FLAGS=-detect_leaks=1 turns it on).
    # /usr/bin/time records the CPU time the run really got (the machine is shared).
    # shellcheck disable=SC2046
    if ! /usr/bin/time -f "cpu: %U s user %S s system %e s wall" -a -o "$log.time" \
        nice -n 19 cargo +nightly fuzz run "${build_flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" -detect_leaks=0 \
        $(flags_for "$t") ${FUZZ_FLAGS:-} >"$log" 2>&1; then
        echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/ (see $log)" >&2
        status=1
    fi
    grep -E '^#[0-9]+[[:space:]]+(DONE|REDUCE|NEW|pulse)' "$log" | tail -1 || true
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$log" || true
    tail -1 "$log.time"
done
exit $status
