#!/usr/bin/env bash
# Installs the one system package the build needs: libclang, for RocksDB's generated bindings
# (librocksdb-sys runs bindgen). Debian's runtime library plus clang's builtin headers are
# enough with the rocksdb crate's `bindgen-runtime` feature (about 7 MB, see BUILD-NOTES).
exec "$(dirname "$0")/ensure-packages.sh" "needed to build RocksDB's bindings" \
    "libclang1-14 libclang-common-14-dev" \
    "/usr/lib/llvm-*/lib/libclang*.so*" "/usr/lib/llvm-*/lib/clang/*/include/stdbool.h"
