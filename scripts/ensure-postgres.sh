#!/usr/bin/env bash
# Installs PostgreSQL's server (Debian's postgresql package) when it is missing: the
# load-test comparison measures AerolithDB against it, and the test suite runs a short
# comparison. Only the binaries under /usr/lib/postgresql/<version>/bin are used: each run
# makes its own cluster with initdb in a scratch directory and starts it on its own loopback
# port, as the `postgres` user the package creates when the run is root's. The package's
# own `main` cluster is not wanted, so the install is told not to create it (postgresql-common
# reads createcluster.d); where one exists already it is left alone and never used.
set -euo pipefail

binaries='/usr/lib/postgresql/*/bin/postgres'
if ! compgen -G "$binaries" >/dev/null && [ "$(id -u)" -eq 0 ]; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/aerolith-no-main.conf
fi
exec "$(dirname "$0")/ensure-packages.sh" "the load-test comparison's peer" postgresql "$binaries"
