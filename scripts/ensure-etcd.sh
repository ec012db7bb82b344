#!/usr/bin/env bash
# Installs etcd (Debian's etcd-server package) when it is missing: the load-test comparison
# measures AerolithDB against it, and the test suite runs a short comparison. Only the
# binary is used; the package's service is not started (each run starts its own etcd on
# loopback with a scratch data directory).
set -euo pipefail

if command -v etcd >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "etcd is missing: run as root, or: sudo apt-get install -y --no-install-recommends etcd-server" >&2
    exit 1
fi
echo "installing etcd (the load-test comparison's peer)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
command -v etcd >/dev/null
