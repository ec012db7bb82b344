#!/usr/bin/env bash
# Same-run A/B of two `aerolith` server binaries with one load client: rounds of
# `aerolith dev` (durable defaults) started from A, then from B, each loaded with the same
# records (bulk requests, 16 in flight: the "load" row, in documents/s) and run through the
# same YCSB workloads over REST; prints every run and the medians per (binary, workload),
# with B's ratio to A and the WAL syncs per acknowledged update or loaded document
# (RocksDB's count over every storage node, from the gateway's /metrics) and the server's
# CPU time per operation (user + system of the `aerolith dev` process, from /proc). The
# client is the same binary every time, so only the server differs.
#
#   scripts/ab.sh A_AEROLITH B_AEROLITH [ROUNDS]
#
# Settings from the environment (defaults in brackets): LOADTEST [the aerolith-loadtest
# next to A], DCS [1], WORKLOADS [c a; empty: the load only], RECORDS [20000], DURATION
# [20s], THREADS [16], PROTOCOL [rest], PORT_BASE [21080], OUT [./ab-results], RATE [none:
# closed loop; N: every workload run open loop at N ops/s, so both binaries do the same
# work and their CPU per operation compares directly].
set -euo pipefail
if [[ $# -lt 2 ]]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
A=$(realpath "$1")
B=$(realpath "$2")
ROUNDS=${3:-3}
LOADTEST=${LOADTEST:-$(dirname "$A")/aerolith-loadtest}
DCS=${DCS:-1}
WORKLOADS=${WORKLOADS-c a}
RECORDS=${RECORDS:-20000}
DURATION=${DURATION:-20s}
THREADS=${THREADS:-16}
PROTOCOL=${PROTOCOL:-rest}
PORT_BASE=${PORT_BASE:-21080}
OUT=${OUT:-./ab-results}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
rest="http://127.0.0.1:$PORT_BASE"
grpc="http://127.0.0.1:$((PORT_BASE + 41971))"
target=$rest
[[ $PROTOCOL == grpc ]] && target=$grpc

server=""
stop() {
    if [[ -n $server ]]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=""
    fi
}
trap stop EXIT

# The server's CPU time so far in clock ticks (user + system, /proc/PID/stat fields 14-15).
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$server/stat"
}

# Every storage node's WAL syncs so far, summed (`n/a` for a binary without the metric).
wal_syncs() {
    curl -fsS "$rest/metrics" 2>/dev/null | python3 -c '
import sys
v = [float(l.rsplit(" ", 1)[1]) for l in sys.stdin if l.startswith("aerolith_wal_syncs_total")]
print(sum(v) if v else "n/a")'
}

# One round of one binary: fresh data, start, wait until ready, load, run each workload.
round() {
    local label=$1 bin=$2 n=$3 data="$OUT/data-$1"
    rm -rf "$data"
    "$bin" dev --dcs "$DCS" --data-dir "$data" --port-base "$PORT_BASE" >"$OUT/$label-$n.log" 2>&1 &
    server=$!
    local deadline=$((SECONDS + 120))
    until curl -fsS "$rest/readyz" >/dev/null 2>&1; do
        if ((SECONDS > deadline)) || ! kill -0 "$server" 2>/dev/null; then
            echo "ab: $label did not become ready; see $OUT/$label-$n.log" >&2
            exit 1
        fi
        sleep 0.5
    done
    # The nodes publish their WAL sync counts every second (binaries older than the
    # counter never do).
    local tries=0
    while [[ $(wal_syncs) == n/a ]] && ((tries < 10)); do
        sleep 0.5
        tries=$((tries + 1))
    done
    for w in load $WORKLOADS; do
        local syncs_before cpu_before
        syncs_before=$(wal_syncs)
        cpu_before=$(cpu_ticks)
        if [[ $w == load ]]; then
            "$LOADTEST" load --target "$target" --protocol "$PROTOCOL" --records "$RECORDS" \
                --threads "$THREADS" --quiet --out "$OUT/$label-$n-$w.json" >/dev/null
        else
            "$LOADTEST" run --target "$target" --protocol "$PROTOCOL" --records "$RECORDS" \
                --threads "$THREADS" --workload "$w" --duration "$DURATION" --quiet \
                ${RATE:+--rate "$RATE"} --out "$OUT/$label-$n-$w.json" >/dev/null
        fi
        local cpu_after
        cpu_after=$(cpu_ticks)
        # The nodes publish their WAL sync counts every second.
        sleep 1.5
        python3 - "$OUT/$label-$n-$w.json" "$label" "$n" "$w" "$syncs_before" "$(wal_syncs)" \
            "$cpu_before" "$cpu_after" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
p99 = max(o["p99_ms"] for o in r["operations"])
if sys.argv[4] == "load":
    # A load's operations are bulk requests: count documents, not requests.
    r["ops_per_s"] = r["info"]["records"] / r["seconds"]
    updates = r["info"]["records"]
    ops = updates
else:
    ops = sum(o["ok"] for o in r["operations"])
    updates = sum(o["ok"] for o in r["operations"] if o["op"] in ("update", "insert", "read_modify_write"))
before, after = sys.argv[5], sys.argv[6]
per = "n/a"
if updates and before != "n/a" and after != "n/a":
    per = f"{(float(after) - float(before)) / updates:.2f}"
    r["wal_syncs_per_update"] = float(per)
cpu_us = (float(sys.argv[8]) - float(sys.argv[7])) / float(sys.argv[9]) * 1e6 / ops if ops else 0.0
r["server_cpu_us_per_op"] = cpu_us
json.dump(r, open(sys.argv[1], "w"))
print(f"{sys.argv[2]} round {sys.argv[3]} workload {sys.argv[4]}: {r['ops_per_s']:.0f} ops/s, p99 {p99:.2f} ms, errors {r['errors']}, WAL syncs per update {per}, server CPU {cpu_us:.1f} us/op")
EOF
    done
    stop
}

for n in $(seq 1 "$ROUNDS"); do
    round A "$A" "$n"
    round B "$B" "$n"
done

python3 - "$OUT" "$ROUNDS" load $WORKLOADS <<'EOF'
import json, statistics, sys
out, rounds, workloads = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print(f"\nmedians of {rounds} interleaved rounds")
print("| workload | A ops/s | B ops/s | B/A | A p99 ms | B p99 ms | A syncs/update | B syncs/update | A CPU us/op | B CPU us/op |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for w in workloads:
    med = {}
    for label in "AB":
        runs = [json.load(open(f"{out}/{label}-{n}-{w}.json")) for n in range(1, rounds + 1)]
        per = [r["wal_syncs_per_update"] for r in runs if "wal_syncs_per_update" in r]
        med[label] = (
            statistics.median(r["ops_per_s"] for r in runs),
            statistics.median(max(o["p99_ms"] for o in r["operations"]) for r in runs),
            f"{statistics.median(per):.2f}" if per else "n/a",
            statistics.median(r["server_cpu_us_per_op"] for r in runs),
        )
    (a, ap, asy, ac), (b, bp, bsy, bc) = med["A"], med["B"]
    print(f"| {w} | {a:.0f} | {b:.0f} | {b / a:.2f} | {ap:.2f} | {bp:.2f} | {asy} | {bsy} | {ac:.1f} | {bc:.1f} |")
EOF
