#!/usr/bin/env bash
# Smoke test of the docker-compose cluster (two DCs of 3 storage nodes, a gateway and a
# replicator each): builds the image, brings the cluster up, writes through dc1 and reads
# through dc2; stops a dc1 storage node container and checks dc1's gateway still serves
# every document (its shards from dc2); restarts it; cuts the replicators off the inter-DC
# network, writes on both sides, reconnects them and checks both DCs converge to equal
# digests; then dc2-n1 loses its volume and is recreated with the default flags: it
# is copied from dc1 and the DCs' digests agree again; finally dc1 grows by a fourth
# storage node (profile `grow`), added to its shard map and rebalanced while it serves, and
# every document stays readable. Tears everything down at the end, also on failure
# (printing the logs first).
# The cluster runs with tokens: an admin token of the script's own (AEROLITH_AUTH_TOKENS)
# beside the ones the certs service generates, which are checked too.
#
# The published ports are the compose file's defaults where free; where a port is taken
# (another cluster, or any process), the script picks free ones instead, so a busy machine
# does not fail the run.
#
#   scripts/compose-smoke.sh                        # stages the release binary
#   AEROLITH_BIN=path/to/aerolith scripts/compose-smoke.sh   # stages that binary
set -euo pipefail
cd "$(dirname "$0")/.."

project=aerolith-smoke
if docker compose version >/dev/null 2>&1; then
    compose() { docker compose -p "$project" --profile grow "$@"; }
else
    compose() { docker-compose -p "$project" --profile grow "$@"; }
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

# A previous run's leftovers go first, so its ports count as free.
compose down -v --remove-orphans >/dev/null 2>&1 || true

# Host ports: `VAR=port` for each published port, the default unless it is taken.
eval "$(python3 - <<'PY'
import socket
wanted = [("AEROLITH_DC1_HTTP_PORT", 8080), ("AEROLITH_DC2_HTTP_PORT", 8081),
          ("AEROLITH_DC1_GRPC_PORT", 50051), ("AEROLITH_DC2_GRPC_PORT", 50052),
          ("AEROLITH_DC1_ADMIN_PORT", 9090), ("AEROLITH_DC2_ADMIN_PORT", 9091)]
def free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
taken = set()
# Fallbacks sit below Linux's ephemeral range, where no client socket lands by chance.
spare = iter(range(18080, 32000))
for var, port in wanted:
    while port in taken or not free(port):
        port = next(spare)
    taken.add(port)
    print(f"export {var}={port}")
PY
)"
http1=$AEROLITH_DC1_HTTP_PORT http2=$AEROLITH_DC2_HTTP_PORT
admin1=$AEROLITH_DC1_ADMIN_PORT admin2=$AEROLITH_DC2_ADMIN_PORT
echo "compose-smoke: ports dc1 $http1/$AEROLITH_DC1_GRPC_PORT/$admin1, dc2 $http2/$AEROLITH_DC2_GRPC_PORT/$admin2"

# The script's own admin token, passed to every gateway and replicator.
ADMIN_TOKEN="smoke-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export AEROLITH_AUTH_TOKENS="admin:$ADMIN_TOKEN"
auth=(-H "authorization: Bearer $ADMIN_TOKEN")

put() { curl -sf "${auth[@]}" -X PUT "http://127.0.0.1:$1/v1/collections/smoke/docs/$2" \
    -H 'content-type: application/json' -d "$3"; }
has() { curl -sf "${auth[@]}" "http://127.0.0.1:$1/v1/collections/smoke/docs/$2" | grep -q "$3"; }
status_of() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
same_digests() {
    python3 - "$admin1" "$admin2" "$ADMIN_TOKEN" <<'PY'
import json, sys, urllib.request
def shards(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/admin/digests",
                                 headers={"authorization": f"Bearer {sys.argv[3]}"})
    return json.load(urllib.request.urlopen(req, timeout=5))["shards"]
a, b = shards(sys.argv[1]), shards(sys.argv[2])
sys.exit(0 if a == b and a else 1)
PY
}

scripts/stage-images.sh
# The fourth dc1 node of the `grow` profile joins at the end, not now.
compose up --build -d certs dc1-n1 dc1-n2 dc1-n3 dc1-gateway dc1-replicator \
    dc2-n1 dc2-n2 dc2-n3 dc2-gateway dc2-replicator

wait_until 180 "dc1's gateway ready" curl -sf "http://127.0.0.1:$http1/readyz"
wait_until 180 "dc2's gateway ready" curl -sf "http://127.0.0.1:$http2/readyz"
wait_until 60 "replicator admin APIs" curl -sf "${auth[@]}" "http://127.0.0.1:$admin2/admin/status"

# Tokens: none is refused; the generated read token reads but may not write.
expect_status() {
    local want=$1 what=$2
    shift 2
    local got
    got=$(status_of "$@")
    [ "$got" = "$want" ] || { echo "compose-smoke: $what: HTTP $got, not $want" >&2; exit 1; }
    echo "ok: $what ($want)"
}
expect_status 401 "a read without a token" "http://127.0.0.1:$http1/v1/collections"
expect_status 401 "the admin API without a token" "http://127.0.0.1:$admin1/admin/status"
tokens_dir=$(mktemp -d)
docker cp dc1-gateway:/certs/tokens "$tokens_dir/tokens" >/dev/null
read_token=$(awk '$1 == "read" {print $2}' "$tokens_dir/tokens")
rm -rf "$tokens_dir"
expect_status 200 "a read with the generated read token" \
    -H "authorization: Bearer $read_token" "http://127.0.0.1:$http1/v1/collections"
expect_status 403 "a write with the read token" -X PUT \
    -H "authorization: Bearer $read_token" -H 'content-type: application/json' -d '{}' \
    "http://127.0.0.1:$http1/v1/collections/smoke/docs/nope"

# Written in dc1, read in dc2.
put "$http1" first '{"n":1}' >/dev/null
wait_until 60 "dc2 reads what dc1 wrote" has "$http2" first '"n":1'

# One dc1 storage node down: dc1's gateway serves every shard (the node's from dc2).
docker stop dc1-n1 >/dev/null
for i in $(seq 1 24); do
    wait_until 30 "write d$i through dc1 with dc1-n1 down" put "$http1" "d$i" "{\"i\":$i}"
done
for i in $(seq 1 24); do
    has "$http1" "d$i" "\"i\":$i" || { echo "compose-smoke: dc1 lost d$i" >&2; exit 1; }
done
echo "ok: dc1 served all 24 documents with dc1-n1 stopped"
docker start dc1-n1 >/dev/null
wait_until 120 "dc1-n1 healthy again" sh -c \
    "docker inspect -f '{{.State.Health.Status}}' dc1-n1 | grep -qx healthy"

# The inter-DC link cut: each DC keeps taking writes; healed, they converge.
network="${project}_interdc"
docker network disconnect "$network" dc1-replicator
docker network disconnect "$network" dc2-replicator
put "$http1" left '{"side":"dc1"}' >/dev/null
put "$http2" right '{"side":"dc2"}' >/dev/null
echo "ok: both DCs took writes while cut off"
docker network connect "$network" dc1-replicator
docker network connect "$network" dc2-replicator
wait_until 120 "dc2 has dc1's write after healing" has "$http2" left '"side":"dc1"'
wait_until 120 "dc1 has dc2's write after healing" has "$http1" right '"side":"dc2"'
wait_until 120 "both DCs' digests equal" same_digests

# A lost volume: dc2-n1 comes back empty with the default flags, and is seeded from dc1
# (`--new-store auto` finds dc1's data; docs/OPERATIONS.md).
compose rm -sf dc2-n1 >/dev/null
docker volume rm "${project}_dc2-n1-data" >/dev/null
compose up -d --no-deps dc2-n1
wait_until 120 "dc2-n1 rebuilt from dc1: both DCs' digests equal" same_digests
wait_until 60 "dc2 serves dc1's first write after the rebuild" has "$http2" left '"side":"dc1"'
# dc1 grows: a fourth node starts empty, joins dc1's shard map and receives a quarter of
# the shards while the DC serves; the gateways reach it by the map's address.
admin_post() {
    curl -sf "${auth[@]}" -X POST "http://127.0.0.1:$admin1$1" -H 'content-type: application/json' -d "$2"
}
compose up -d --no-deps dc1-n4
wait_until 120 "dc1-n4 added to dc1's shard map" admin_post /admin/nodes '{"id":"n4","rpc":"dc1-n4:7000"}'
admin_post /admin/rebalance '{}' >/dev/null
balanced() {
    python3 - "$admin1" "$ADMIN_TOKEN" <<'PY'
import json, sys, urllib.request
def get(path):
    req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}{path}",
                                 headers={"authorization": f"Bearer {sys.argv[2]}"})
    return json.load(urllib.request.urlopen(req, timeout=5))
nodes, moves = get("/admin/nodes")["nodes"], get("/admin/moves")
counts = [len(n["shards"]) for n in nodes]
ok = moves["queued"] == 0 and moves["running"] == 0 and moves["failed"] == 0
sys.exit(0 if ok and len(counts) == 4 and max(counts) <= 16 else 1)
PY
}
wait_until 180 "dc1 rebalanced over four nodes" balanced
for id in first left right; do
    has "$http1" "$id" '"' || { echo "compose-smoke: dc1 lost $id after growing" >&2; exit 1; }
done
for i in $(seq 1 24); do
    has "$http1" "d$i" "\"i\":$i" || { echo "compose-smoke: dc1 lost d$i after growing" >&2; exit 1; }
done
put "$http1" grown '{"nodes":4}' >/dev/null
wait_until 60 "dc2 reads a write made after dc1 grew" has "$http2" grown '"nodes":4'
wait_until 120 "both DCs' digests equal after dc1 grew" same_digests
echo "compose-smoke: passed"
