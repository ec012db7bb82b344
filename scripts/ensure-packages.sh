#!/usr/bin/env bash
# Installs Debian packages when what they provide is missing, as root; otherwise prints the
# command that would. Each WHAT is a command name, or a path pattern (with a /) that must
# match a file; all must be there. The ensure-*.sh scripts call it.
# Usage: scripts/ensure-packages.sh WHY "PACKAGE..." WHAT...
set -euo pipefail
why=$1 packages=$2
shift 2

missing=
present() {
    local what
    for what in "$@"; do
        case "$what" in
        */*) compgen -G "$what" >/dev/null && continue ;;
        *) command -v "$what" >/dev/null 2>&1 && continue ;;
        esac
        missing=$what
        return 1
    done
}

if present "$@"; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "$missing is missing: run as root, or: sudo apt-get install -y --no-install-recommends $packages" >&2
    exit 1
fi
echo "installing $packages ($why)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # a list of package names
apt-get install -y -qq --no-install-recommends $packages >/dev/null
present "$@"
