"""A fresh `aerolith dev` for the checks in scripts/ that need a running cluster
(scripts/check-openapi.py, scripts/test-console.py): free ports, start, stop."""
import os
import pathlib
import signal
import socket
import subprocess
import sys


def free_base(first, dcs=1):
    """A REST port P from `first` on whose `dcs`-DC dev-cluster siblings (REST, gRPC and
    admin ports of every DC) are free too."""
    for p in range(first, first + 2000, 10):
        ok = True
        for port in (q + d for q in (p, p - 8080 + 50051, p - 8080 + 9090) for d in range(dcs)):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
        if ok:
            return p
    sys.exit("no free ports for aerolith dev")


def start(aerolith, work: pathlib.Path, nodes, tokens, first_port, dcs=1):
    """Starts `aerolith dev` with `dcs` DCs of `nodes` nodes, data and log (`dev.log`) under
    `work` and `tokens` (ROLE TOKEN lines) configured, in its own process group; returns the
    process and the first DC's REST base URL. `endpoints.json` under `work / "data"` says it
    is ready."""
    (work / "tokens").write_text(tokens)
    port = free_base(first_port, dcs)
    log = open(work / "dev.log", "w")
    dev = subprocess.Popen([aerolith, "dev", "--data-dir", str(work / "data"), "--dcs", str(dcs),
                            "--nodes-per-dc", str(nodes), "--port-base", str(port),
                            "--auth-tokens", str(work / "tokens")],
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return dev, f"http://127.0.0.1:{port}"


def stop(dev):
    """Stops a cluster `start` started: its whole process group."""
    os.killpg(dev.pid, signal.SIGTERM)
    dev.wait(timeout=30)
