#!/usr/bin/env bash
# Measures the rebuild rate (docs/BENCHMARKS.md "Rebuilding"): a release `aerolith dev`
# (2 DCs x 3 nodes, durable), DOCS documents bulk-imported into dc1 and replicated; then the
# cluster is stopped, dc2's storage nodes lose their data directories, and the cluster is
# started again: each dc2 node is seeded from dc1 (full copy + catch-up). Prints each node's
# "seeded records" log line and the time from the restart until the DCs' digests agree.
#
#   loadtest/rebuild-bench.sh [DOCS]      # default 100000
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-100000}
target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target/release/aerolith"
[ -x "$bin" ] || cargo build --release -p aerolith-cli --bin aerolith
work=$(mktemp -d)
base=18380
dev=
trap '[ -n "$dev" ] && kill $dev 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
start_dev() {
    rm -f "$work/data/endpoints.json"
    "$bin" dev --data-dir "$work/data" --port-base "$base" >"$work/dev.out" 2>"$1" &
    dev=$!
    until [ -f "$work/data/endpoints.json" ]; do sleep 0.2; done
}
http1=http://127.0.0.1:$base
admin1=http://127.0.0.1:$((base - 8080 + 9090))
admin2=http://127.0.0.1:$((base - 8080 + 9091))

start_dev "$work/first.log"
python3 - "$docs" > "$work/docs.ndjson" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": f"d{i}", "i": i, "name": f"user {i}", "tags": ["a", "b"], "pad": "x" * 100}))
PY
"$bin" --endpoint "$http1" bulk bench "$work/docs.ndjson"

converged() {
    python3 - "$admin1" "$admin2" <<'PY'
import json, sys, time, urllib.request
deadline = time.time() + 1800
while True:
    try:
        a, b = (json.load(urllib.request.urlopen(f"{u}/admin/digests", timeout=60)).get("shards") for u in sys.argv[1:3])
        if a is not None and a == b:
            break
    except Exception:
        pass
    if time.time() > deadline:
        sys.exit("never converged")
    time.sleep(0.5)
PY
}
converged
kill -INT $dev
wait $dev
rm -rf "$work/data/dc2/n1" "$work/data/dc2/n2" "$work/data/dc2/n3"
t0=$(date +%s.%N)
start_dev "$work/rebuild.log"
converged
t1=$(date +%s.%N)
grep -h "seeded records" "$work/rebuild.log" | sed 's/\x1b\[[0-9;]*m//g' || true
python3 - "$t0" "$t1" "$docs" <<'PY'
import sys
t0, t1, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"restart to equal digests: {t1 - t0:.1f} s for {n} documents ({n / (t1 - t0):.0f} documents/s, startup included)")
PY
