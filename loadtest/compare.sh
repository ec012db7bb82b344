#!/usr/bin/env bash
# The comparison in one command: builds the release binaries, installs etcd, PostgreSQL and
# wrk if needed, and runs `aerolith-loadtest compare` (AerolithDB via `aerolith dev` over REST
# and gRPC, the HTTP and storage ceilings, etcd, PostgreSQL; wrk for the client check) with
# any extra arguments passed through, e.g.
#   loadtest/compare.sh --workloads a,b,c --records 50000 --duration 30s
# Results go to ./compare-results (summary.txt, compare.json, one SVG plot per workload).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/aerolith-target}"
scripts/ensure-build-deps.sh
scripts/ensure-etcd.sh
scripts/ensure-postgres.sh
# wrk only feeds the client check, which the comparison skips without it.
scripts/ensure-wrk.sh || echo "wrk unavailable: the client check will be skipped" >&2
cargo build --release --locked -p aerolith-cli -p aerolith-loadtest
exec "$CARGO_TARGET_DIR/release/aerolith-loadtest" compare "$@"
