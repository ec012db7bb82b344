#!/usr/bin/env python3
"""The Python client's tests (clients/python/tests, standard library unittest): builds a
venv under /var/tmp, `pip install`s ./clients/python into it (as a user would), and runs the
suite there against the `aerolith` binary given: offline tests of the retry rules and the
WebSocket framing, every operation against `aerolith dev --dcs 2`, and gateway failover and
restart against one DC run as separate processes. Exits non-zero on a failure.

    scripts/test-python-client.py [PATH_TO_AEROLITH] [unittest args, e.g. test_dev -k session]
"""
import os
import pathlib
import subprocess
import sys
import time

from pyvenv import with_package

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clients" / "python"
VENV = pathlib.Path(os.environ.get("AEROLITH_PYCLIENT_VENV", "/var/tmp/aerolith-venv-pyclient"))


def main():
    args = sys.argv[1:]
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    aerolith = pathlib.Path(args.pop(0) if args and not args[0].startswith("test") and not args[0].startswith("-")
                            else f"{target}/debug/aerolith").resolve()
    if not aerolith.exists():
        sys.exit(f"test-python-client: {aerolith} is missing; build it first (cargo build -p aerolith-cli)")
    started = time.monotonic()
    # Installed, not imported from the tree: the tests see what `pip install` gives a user.
    python = with_package(VENV, PACKAGE)
    installed = subprocess.run([str(python), "-c", "import aerolith, pathlib; p = pathlib.Path(aerolith.__file__).parent;"
                                "assert (p / 'py.typed').exists(), p; print(p)"],
                               check=True, capture_output=True, text=True).stdout.strip()
    print(f"test-python-client: aerolith installed at {installed}")
    env = dict(os.environ, AEROLITH_BIN=str(aerolith), PYTHONDONTWRITEBYTECODE="1")
    env = {k: v for k, v in env.items() if not k.startswith(("AEROLITH_AUTH", "AEROLITH_TLS"))}
    tests = ["-v", *args] if args else ["discover", "-v", "-s", ".", "-p", "test_*.py"]
    r = subprocess.run([str(python), "-m", "unittest", *tests], cwd=PACKAGE / "tests", env=env)
    took = time.monotonic() - started
    if r.returncode:
        sys.exit(f"test-python-client: FAILED after {took:.0f} s")
    print(f"test-python-client: passed in {took:.0f} s")


if __name__ == "__main__":
    main()
