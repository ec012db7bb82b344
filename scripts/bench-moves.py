#!/usr/bin/env python3
"""Shard moves under load (issue 25; docs/BENCHMARKS.md, "Moving a quarter of a DC's shards").

A one-DC `aerolith dev` of four storage nodes (64 shards) is loaded with RECORDS documents
(YCSB records, 10 fields of 100 bytes). YCSB A (50 % reads, 50 % updates, zipfian, REST,
closed loop, 16 threads) then runs in back-to-back windows of WINDOW seconds the whole
time: a few windows before, then n4 is decommissioned (its 16 shards, a quarter of the
DC's, move to the other three), then once that is done n4 is added back and the DC
rebalanced (16 shards move back). For each of the two movements it prints the time from
the request to a balanced map with no move left, the median throughput of the windows
that lie wholly inside the movement as a ratio of the median of the windows before, the
longest operation a client saw in those windows, and the longest write pause the moves
recorded (`pause_ms`, fence to flip).

    scripts/bench-moves.py [--bin DIR] [--records N] [--window S] [--out FILE]

DIR holds `aerolith` and `aerolith-loadtest` (default: $CARGO_TARGET_DIR/release, or
/var/tmp/aerolith-target/release). Durable (default) settings throughout.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

PORT_BASE = 18080


def admin(port, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 method="GET" if body is None else "POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def balanced(port, nodes_expected):
    nodes, moves = admin(port, "/admin/nodes"), admin(port, "/admin/moves")
    counts = [len(n["shards"]) for n in nodes["nodes"]]
    idle = moves["queued"] == 0 and moves["running"] == 0
    return idle and len(counts) == nodes_expected and max(counts) - min(counts) <= 1, moves


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = os.environ.get("CARGO_TARGET_DIR", "/var/tmp/aerolith-target")
    ap.add_argument("--bin", default=os.path.join(target, "release"))
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()
    aerolith = os.path.join(args.bin, "aerolith")
    loadtest = os.path.join(args.bin, "aerolith-loadtest")
    http, admin_port = PORT_BASE, PORT_BASE + 1010
    work = tempfile.mkdtemp(prefix="bench-moves-", dir="/var/tmp")
    data = os.path.join(work, "data")
    dev = subprocess.Popen([aerolith, "dev", "--dcs", "1", "--nodes-per-dc", "4",
                            "--data-dir", data, "--port-base", str(PORT_BASE)],
                           stdout=open(os.path.join(work, "dev.log"), "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while not os.path.exists(os.path.join(data, "endpoints.json")):
            if time.time() > deadline or dev.poll() is not None:
                sys.exit("bench-moves: aerolith dev did not start; see " + work)
            time.sleep(0.2)
        target_url = f"http://127.0.0.1:{http}"
        t0 = time.time()
        subprocess.run([loadtest, "load", "--target", target_url, "--records", str(args.records)],
                       check=True, stdout=subprocess.DEVNULL)
        print(f"loaded {args.records} records in {time.time() - t0:.0f} s", flush=True)

        windows = []
        stop = threading.Event()

        def drive():
            n = 0
            while not stop.is_set():
                out = os.path.join(work, f"w{n}.json")
                start = time.time()
                subprocess.run([loadtest, "run", "--target", target_url, "--records", str(args.records),
                                "--workload", "a", "--duration", f"{args.window}s", "--quiet", "--out", out],
                               check=True, stdout=subprocess.DEVNULL)
                end = time.time()
                with open(out) as f:
                    r = json.load(f)
                worst = max((o["max_ms"] for o in r["operations"]), default=0.0)
                windows.append({"start": start, "end": end, "ops_per_s": r["ops_per_s"],
                                "max_ms": worst, "errors": r["errors"]})
                n += 1

        driver = threading.Thread(target=drive)
        driver.start()
        time.sleep(4 * args.window + 1)
        phases = []
        for name, action, nodes in [
            ("decommission n4 (16 of 64 shards move out)",
             lambda: admin(admin_port, "/admin/nodes/n4/decommission", {}), 3),
            ("add n4 back and rebalance (16 shards move back)",
             lambda: (admin(admin_port, "/admin/nodes", {"id": "n4", "rpc": n4_rpc}),
                      admin(admin_port, "/admin/rebalance", {})), 4),
        ]:
            if nodes == 3:
                n4_rpc = next(n["rpc"] for n in admin(admin_port, "/admin/nodes")["nodes"]
                              if n["id"] == "n4")
            seen = len(admin(admin_port, "/admin/moves")["moves"])
            start = time.time()
            action()
            while True:
                done, moves = balanced(admin_port, nodes)
                if done:
                    break
                time.sleep(0.1)
            end = time.time()
            mine = moves["moves"][seen:]
            phases.append({"name": name, "start": start, "end": end, "moves": len(mine),
                           "failed": sum(1 for m in mine if m["state"] == "failed"),
                           "pause_ms": max((m.get("pause_ms") or 0) for m in mine),
                           "bytes": sum(m.get("bytes", 0) for m in mine)})
            time.sleep(3 * args.window + 1)
        stop.set()
        driver.join()

        before = [w for w in windows if w["end"] <= phases[0]["start"]]
        base = statistics.median(w["ops_per_s"] for w in before)
        report = {"records": args.records, "window_s": args.window, "baseline_ops_per_s": base,
                  "windows": windows, "phases": []}
        print(f"before: median {base:.0f} ops/s over {len(before)} windows of {args.window} s")
        for p in phases:
            inside = [w for w in windows if w["start"] >= p["start"] and w["end"] <= p["end"]]
            touching = [w for w in windows if w["end"] > p["start"] and w["start"] < p["end"]]
            during = statistics.median(w["ops_per_s"] for w in inside) if inside else None
            worst = max((w["max_ms"] for w in touching), default=0.0)
            errors = sum(w["errors"] for w in touching)
            p.update({"seconds": p["end"] - p["start"], "windows_inside": len(inside),
                      "ops_per_s": during, "ratio": during / base if during else None,
                      "client_max_ms": worst, "client_errors": errors})
            report["phases"].append(p)
            ratio = f"{during / base:.2f}" if during else "n/a (no window wholly inside)"
            print(f"{p['name']}: {p['moves']} moves ({p['failed']} failed, {p['bytes'] / 1e6:.0f} MB) "
                  f"balanced in {p['seconds']:.1f} s; throughput {ratio} of before "
                  f"({len(inside)} windows); longest client operation {worst:.0f} ms; "
                  f"longest pause {p['pause_ms']} ms; client errors {errors}")
        if args.out:
            with open(args.out, "w") as f:
                json.dump(report, f, indent=1)
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dev.kill()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
