#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets: frame, filter, tokens, patch) for a bounded
# time each, with cargo-fuzz (installed when missing). The toolchain here is stable; cargo
# fuzz needs nightly flags, which RUSTC_BOOTSTRAP=1 allows.
#
#   scripts/fuzz.sh                 # 60 s per target
#   scripts/fuzz.sh 600             # 10 minutes per target
#   scripts/fuzz.sh 600 filter      # one target
#
# Corpora grow in fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET); a crash leaves its
# input in fuzz/artifacts/TARGET and fails the script. Both directories are git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...] (SECONDS a positive number, not \"$seconds\")" >&2
    exit 2
fi
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame filter tokens patch)

if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "installing cargo-fuzz..." >&2
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${AEROLITH_FUZZ_TARGET_DIR:-/var/tmp/aerolith-fuzz-target}"

for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    if [ -d "fuzz/seeds/$t" ]; then
        cp -n "fuzz/seeds/$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
    fi
    echo "fuzzing $t for ${seconds} s" >&2
    (cd fuzz && cargo fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
done
echo "fuzz: every target ran ${seconds} s without a crash"
