#!/usr/bin/env bash
# Stages what the container image holds into docker/rootfs: the `aerolith` binary and exactly
# the shared libraries it loads (from `ldd`), so `docker/Dockerfile` can start FROM scratch
# and no base image is pulled from any registry. The image then runs every role (node,
# gateway, replicator, certs, healthcheck), as the unprivileged user 10001.
#
#   scripts/stage-images.sh                       # builds the release binary first
#   AEROLITH_BIN=path/to/aerolith scripts/stage-images.sh   # stages that binary instead
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/aerolith-target}"

bin="${AEROLITH_BIN:-}"
if [ -z "$bin" ]; then
    scripts/ensure-build-deps.sh
    cargo build --release --locked -p aerolith-cli
    bin="$CARGO_TARGET_DIR/release/aerolith"
fi
[ -x "$bin" ] || { echo "stage-images: $bin is not an executable" >&2; exit 1; }

root=docker/rootfs
rm -rf "$root" docker/owned
# The image's writable directories (volumes' mount points), chowned in the Dockerfile.
mkdir -p docker/owned/data docker/owned/certs
mkdir -p "$root/usr/local/bin" "$root/tmp" "$root/etc"
cp "$bin" "$root/usr/local/bin/aerolith"
# Shared libraries, by the paths the dynamic loader looks for them at.
for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
chmod 1777 "$root/tmp"
# Docker mounts /etc/hosts and /etc/resolv.conf; glibc resolves names without nsswitch.conf.
echo "staged $(du -sh "$root" | cut -f1) into $root:"
find "$root" -type f | sed "s|^$root||" | sort
