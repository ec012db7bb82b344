#!/usr/bin/env bash
# Installs etcd (Debian's etcd-server package) when it is missing: the load-test comparison
# measures AerolithDB against it, and the test suite runs a short comparison. Only the
# binary is used; the package's service is not started (each run starts its own etcd on
# loopback with a scratch data directory).
exec "$(dirname "$0")/ensure-packages.sh" "the load-test comparison's peer" etcd-server etcd
