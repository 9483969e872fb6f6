#!/usr/bin/env bash
# Ingestion throughput benchmark (issue 2): read / parse / parse+flows / parse+flows+features
# packets/s on a generated capture, next to `tcpdump -r FILE -w /dev/null` on the same file.
#
#   bench/ingest.sh                                 # 5 M packets, best of 3
#   TRAFGEN_BENCH_PACKETS=200000 bench/ingest.sh    # smaller capture
#   TRAFGEN_BENCH_RUNS=5 TRAFGEN_BENCH_CPU=1 bench/ingest.sh
#   bench/ingest.sh -- parse+flows tcpdump          # only these stages
#
# Extra arguments are passed to `cargo bench --bench ingest` (e.g. --offline, -j1).
# The capture is kept in target/bench/ingest-N.pcap and reused; results also go to
# target/bench/ingest.json.
set -euo pipefail
cd "$(dirname "$0")/.."

# libtorch (.venv/torch, named by .cargo/config.toml) is needed to link the crate.
if [ ! -e .venv/torch ]; then
    if [ -f scripts/setup.sh ]; then
        echo "ingest.sh: .venv is missing: running scripts/setup.sh quietly (libtorch, tcpdump) …" >&2
        log=$(mktemp)
        if ! bash scripts/setup.sh >"$log" 2>&1; then
            cat "$log" >&2
            echo "ingest.sh: scripts/setup.sh failed" >&2
            exit 1
        fi
        rm -f "$log"
    else
        echo "ingest.sh: .venv is missing and there is no scripts/setup.sh to create it" >&2
        exit 1
    fi
fi

exec cargo bench --bench ingest "$@"
