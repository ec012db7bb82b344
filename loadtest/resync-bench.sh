#!/usr/bin/env bash
# Measures anti-entropy on 100k documents (docs/BENCHMARKS.md "Anti-entropy"): a release
# `aerolith dev` (2 DCs x 3 nodes, durable), 100 000 documents bulk-imported into dc1 and
# replicated; then a resync of the converged DCs (pure comparison), and one after dc2 missed
# N writes (dc1's shipping to dc2 paused while they were written).
#
#   loadtest/resync-bench.sh [DOCS] [MISSED]      # defaults 100000 and 1000
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-100000}
missed=${2:-1000}
target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target/release/aerolith"
[ -x "$bin" ] || cargo build --release -p aerolith-cli --bin aerolith
work=$(mktemp -d)
base=18280
"$bin" dev --data-dir "$work/data" --port-base "$base" >/dev/null 2>&1 &
dev=$!
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null; rm -rf "$work"' EXIT
until [ -f "$work/data/endpoints.json" ]; do sleep 0.5; done
http1=http://127.0.0.1:$base
admin1=http://127.0.0.1:$((base - 8080 + 9090))
admin2=http://127.0.0.1:$((base - 8080 + 9091))

python3 - "$docs" > "$work/docs.ndjson" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": f"d{i}", "i": i, "name": f"user {i}", "tags": ["a", "b"], "pad": "x" * 100}))
PY
"$bin" --endpoint "$http1" bulk bench "$work/docs.ndjson"

converged() {
    python3 - "$admin1" "$admin2" <<'PY'
import json, sys, time, urllib.request
deadline = time.time() + 600
while True:
    a, b = (json.load(urllib.request.urlopen(f"{u}/admin/digests", timeout=60))["shards"] for u in sys.argv[1:3])
    if a == b:
        break
    if time.time() > deadline:
        sys.exit("never converged")
    time.sleep(1)
PY
}
resync() {
    curl -sf -X POST "$1/admin/resync" -H 'content-type: application/json' -d "{\"peer\":\"$2\"}"
    echo
}
converged
echo "converged DCs, $docs documents:"
resync "$admin1" dc2
curl -sf -X POST "$admin1/admin/peers/dc2/pause" >/dev/null
python3 - "$missed" > "$work/missed.ndjson" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": f"m{i}", "i": i, "pad": "y" * 100}))
PY
"$bin" --endpoint "$http1" bulk bench "$work/missed.ndjson" >/dev/null
echo "dc2 missed $missed writes (shipping paused), resync from dc2:"
resync "$admin2" dc1
curl -sf -X POST "$admin1/admin/peers/dc2/resume" >/dev/null
