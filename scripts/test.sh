#!/usr/bin/env bash
# Runs the whole test suite (unit tests and over-the-wire integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh
scripts/ensure-etcd.sh
cargo test --workspace --locked "$@"
