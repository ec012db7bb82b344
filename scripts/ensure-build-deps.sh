#!/usr/bin/env bash
# Installs the one system package the build needs: libclang, for RocksDB's generated bindings
# (librocksdb-sys runs bindgen). Debian's runtime library plus clang's builtin headers are
# enough with the rocksdb crate's `bindgen-runtime` feature (about 7 MB, see BUILD-NOTES).
set -euo pipefail

have_libclang() {
    compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null &&
        compgen -G "/usr/lib/llvm-*/lib/clang/*/include/stdbool.h" >/dev/null
}

if have_libclang; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "libclang is missing: run as root, or: sudo apt-get install -y --no-install-recommends libclang1-14 libclang-common-14-dev" >&2
    exit 1
fi
echo "installing libclang (needed to build RocksDB's bindings)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends libclang1-14 libclang-common-14-dev >/dev/null
have_libclang
