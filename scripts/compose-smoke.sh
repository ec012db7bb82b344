#!/usr/bin/env bash
# Smoke test of the docker-compose cluster (two DCs of 3 storage nodes, a gateway and a
# replicator each): builds the image, brings the cluster up, writes through dc1 and reads
# through dc2; stops a dc1 storage node container and checks dc1's gateway still serves
# every document (its shards from dc2); restarts it; cuts the replicators off the inter-DC
# network, writes on both sides, reconnects them and checks both DCs converge to equal
# digests. Tears everything down at the end, also on failure (printing the logs first).
#
#   scripts/compose-smoke.sh                        # stages the release binary
#   AEROLITH_BIN=path/to/aerolith scripts/compose-smoke.sh   # stages that binary
set -euo pipefail
cd "$(dirname "$0")/.."

project=aerolith-smoke
if docker compose version >/dev/null 2>&1; then
    compose() { docker compose -p "$project" "$@"; }
else
    compose() { docker-compose -p "$project" "$@"; }
fi

cleanup() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        echo "compose-smoke: FAILED; the last log lines of every service:" >&2
        compose logs --tail 20 >&2 || true
    fi
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    exit "$status"
}
trap cleanup EXIT

# Retries a command until it succeeds or `secs` pass: wait_until SECS WHAT COMMAND...
wait_until() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "compose-smoke: $what: not after ${secs} s" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "ok: $what"
}

put() { curl -sf -X PUT "http://127.0.0.1:$1/v1/collections/smoke/docs/$2" \
    -H 'content-type: application/json' -d "$3"; }
has() { curl -sf "http://127.0.0.1:$1/v1/collections/smoke/docs/$2" | grep -q "$3"; }
same_digests() {
    python3 - <<'PY'
import json, sys, urllib.request
a, b = (json.load(urllib.request.urlopen(f"http://127.0.0.1:{p}/admin/digests", timeout=5))["shards"]
        for p in (9090, 9091))
sys.exit(0 if a == b and a else 1)
PY
}

compose down -v --remove-orphans >/dev/null 2>&1 || true
scripts/stage-images.sh
compose up --build -d

wait_until 180 "dc1's gateway ready" curl -sf http://127.0.0.1:8080/readyz
wait_until 180 "dc2's gateway ready" curl -sf http://127.0.0.1:8081/readyz
wait_until 60 "replicator admin APIs" curl -sf http://127.0.0.1:9091/admin/status

# Written in dc1, read in dc2.
put 8080 first '{"n":1}' >/dev/null
wait_until 60 "dc2 reads what dc1 wrote" has 8081 first '"n":1'

# One dc1 storage node down: dc1's gateway serves every shard (the node's from dc2).
docker stop dc1-n1 >/dev/null
for i in $(seq 1 24); do
    wait_until 30 "write d$i through dc1 with dc1-n1 down" put 8080 "d$i" "{\"i\":$i}"
done
for i in $(seq 1 24); do
    has 8080 "d$i" "\"i\":$i" || { echo "compose-smoke: dc1 lost d$i" >&2; exit 1; }
done
echo "ok: dc1 served all 24 documents with dc1-n1 stopped"
docker start dc1-n1 >/dev/null
wait_until 120 "dc1-n1 healthy again" sh -c \
    "docker inspect -f '{{.State.Health.Status}}' dc1-n1 | grep -qx healthy"

# The inter-DC link cut: each DC keeps taking writes; healed, they converge.
network="${project}_interdc"
docker network disconnect "$network" dc1-replicator
docker network disconnect "$network" dc2-replicator
put 8080 left '{"side":"dc1"}' >/dev/null
put 8081 right '{"side":"dc2"}' >/dev/null
echo "ok: both DCs took writes while cut off"
docker network connect "$network" dc1-replicator
docker network connect "$network" dc2-replicator
wait_until 120 "dc2 has dc1's write after healing" has 8081 left '"side":"dc1"'
wait_until 120 "dc1 has dc2's write after healing" has 8080 right '"side":"dc2"'
wait_until 120 "both DCs' digests equal" same_digests
echo "compose-smoke: passed"
