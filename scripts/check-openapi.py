#!/usr/bin/env python3
"""Checks /openapi.json against the server it describes (issue 29): a fresh `aerolith dev`
(tokens on), whose document must pass openapi-spec-validator and then schemathesis with
every check (`st run --checks all`), with a fixed seed and a bounded number of examples.
Both tools are pinned in scripts/openapi/requirements.txt and installed into a venv.

Values only the server can issue (session and resume tokens, cursors) are collected from
the server first and handed to schemathesis through scripts/openapi/hooks.py; the checks
that cannot apply and the statuses each check accepts are in
scripts/openapi/schemathesis.toml, with the reasons in docs/API-DECISIONS.md.

    scripts/check-openapi.py [PATH_TO_AEROLITH]   # default: $CARGO_TARGET_DIR/debug/aerolith
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import devcluster
from pyvenv import in_venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
HERE = ROOT / "scripts" / "openapi"
REQUIREMENTS = HERE / "requirements.txt"
VENV = pathlib.Path(os.environ.get("AEROLITH_OPENAPI_VENV", "/var/tmp/aerolith-venv-openapi"))
ADMIN = "openapi-admin-token-0123456789abcdef"
READ = "openapi-read-token-0123456789abcdef"
SEED = 29
EXAMPLES = int(os.environ.get("AEROLITH_OPENAPI_EXAMPLES", "100"))
WAIT = 120


def call(base, method, path, body=None, headers=None):
    """One REST call with the admin token: (status, headers, parsed body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + ADMIN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
            return r.status, r.headers, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, e.headers, json.loads(text) if text else None


def until(what, check, within=WAIT):
    """Retries `check` until it returns something truthy, or fails saying `what`."""
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            got = check()
            if got:
                return got
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    sys.exit(f"check-openapi: timed out waiting for {what}")


def issued(base):
    """Tokens the server issued, by the string format under which the document names them:
    a session token, listing and query cursors, and resume tokens."""
    for i in range(3):
        status, headers, _ = call(base, "PUT", f"/v1/collections/seeded/docs/d{i}", {"n": i})
        assert status in (200, 201), status
    session = headers["X-Aerolith-Session"]
    _, _, page = call(base, "GET", "/v1/collections/seeded/docs?limit=1")
    _, _, queried = call(base, "POST", "/v1/collections/seeded/query", {"limit": 1})
    _, _, changes = call(base, "GET", "/v1/collections/seeded/changes?limit=1")
    _, _, quiet = call(base, "GET", "/v1/collections/quiet/changes")
    return {
        "aerolith-session": [session, ""],
        "aerolith-cursor": [page["next_cursor"]],
        "aerolith-query-cursor": [queried["next_cursor"]],
        "aerolith-resume-token": [changes["next"], changes["changes"][0]["token"], quiet["next"]],
    }


def validate(base):
    """openapi-spec-validator on the served document."""
    from openapi_spec_validator import validate as validate_spec

    status, _, doc = call(base, "GET", "/openapi.json")
    assert status == 200, status
    validate_spec(doc)
    print(f"check-openapi: openapi-spec-validator: the OpenAPI {doc['openapi']} document is valid")


def schemathesis(base, work, tokens):
    """`st run --checks all` against `base`; its exit code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE)
    env["SCHEMATHESIS_HOOKS"] = "hooks"
    env["AEROLITH_OPENAPI_ISSUED"] = json.dumps(tokens)
    env["AEROLITH_OPENAPI_BASE"] = base
    env["AEROLITH_OPENAPI_TOKEN"] = ADMIN
    st = pathlib.Path(sys.executable).parent / "st"
    cmd = [str(st), "--no-color", "--config-file", str(HERE / "schemathesis.toml"), "run",
           f"{base}/openapi.json", "--checks", "all", "--seed", str(SEED),
           "--max-examples", str(EXAMPLES), "--workers", "1",
           "--report", "junit", "--report-dir", str(work / "report")]
    return subprocess.run(cmd, env=env, cwd=work).returncode


def main():
    in_venv(VENV, REQUIREMENTS)
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    aerolith = sys.argv[1] if len(sys.argv) > 1 else f"{target}/debug/aerolith"
    if not pathlib.Path(aerolith).exists():
        sys.exit(f"check-openapi: {aerolith} is missing; build it first")
    started = time.time()
    work = pathlib.Path(tempfile.mkdtemp(prefix="aerolith-openapi-"))
    dev, base = devcluster.start(aerolith, work, 1, f"admin {ADMIN}\nread {READ}\n", 21480)
    failed = True
    try:
        until("aerolith dev ready", lambda: (work / "data" / "endpoints.json").exists())
        validate(base)
        code = schemathesis(base, work, issued(base))
        failed = code != 0
    finally:
        devcluster.stop(dev)
        if failed:
            # The cluster's own complaints, without the audit line of every request.
            lines = [line for line in (work / "dev.log").read_text().splitlines()
                     if "aerolith::audit" not in line]
            sys.stderr.write("\n".join(lines[-80:]) + "\n")
        shutil.rmtree(work, ignore_errors=True)
    took = time.time() - started
    if failed:
        sys.exit(f"check-openapi: schemathesis failed ({took:.0f} s)")
    print(f"check-openapi: passed ({took:.0f} s)")


if __name__ == "__main__":
    main()
