#!/usr/bin/env bash
# Runs the whole test suite (unit and over-the-wire integration tests), then the shell
# and Python blocks of README.md and docs/ marked `<!-- check-docs -->` against a fresh
# `aerolith dev`, then the offline check of the Kubernetes manifests (deploy/kubernetes),
# then the OpenAPI document checked against a fresh `aerolith dev` (openapi-spec-validator,
# then schemathesis with every check), then the Python client's tests (clients/python,
# installed into a venv; against `aerolith dev` and a cluster of separate processes), then
# the web console's tests in headless Chromium (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh
scripts/ensure-etcd.sh
scripts/ensure-postgres.sh
cargo test --workspace --locked "$@"
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
python3 scripts/check-docs.py "$target_dir/debug/aerolith"
python3 scripts/check-kubernetes.py "$target_dir/debug/aerolith"
python3 scripts/check-openapi.py "$target_dir/debug/aerolith"
python3 scripts/test-python-client.py "$target_dir/debug/aerolith"
python3 scripts/test-console.py "$target_dir/debug/aerolith"
