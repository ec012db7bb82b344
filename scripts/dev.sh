#!/usr/bin/env bash
# Builds (release) and runs `aerolith dev`: a whole cluster in one process on 127.0.0.1.
# Extra arguments go to `aerolith dev` (see `aerolith dev --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh
exec cargo run --release --locked -p aerolith-cli --bin aerolith -- dev "$@"
