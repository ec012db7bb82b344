#!/usr/bin/env python3
"""Runs the shell blocks of README.md and docs/*.md marked `<!-- check-docs -->` (the line
right before the opening fence) against a fresh `aerolith dev`, in document order, and fails
if any command in them fails or prints a server error (5xx, `internal`, `unavailable`,
`deadline_exceeded`). Marked ```python blocks run the same way, with `python` from a venv
under /var/tmp holding the Python client (`pip install ./clients/python`). Marked ```rust
blocks (whole programs using `aerolith-client`) run after them as the client crate's doc
tests (`cargo test --doc`, with `--cfg aerolith_docs`), against the same cluster. Blocks use
the documented default ports; they are moved to free ones here, and the client's
AEROLITH_ENDPOINT / AEROLITH_ADMIN_ENDPOINT point at them.

    scripts/check-docs.py [PATH_TO_AEROLITH]     # default: $CARGO_TARGET_DIR/debug/aerolith
"""
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from pyvenv import with_package

ROOT = pathlib.Path(__file__).resolve().parent.parent
MARK = "<!-- check-docs -->"
# What a block's output must not hold: a 5xx status line or a server-side error code.
SERVER_ERROR = re.compile(r'HTTP/[0-9.]+ 5[0-9][0-9]|"code":\s*"(internal|unavailable|deadline_exceeded)"')


def blocks():
    """(file, line, text) of every marked block, README first."""
    files = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    for f in files:
        lines = f.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() == MARK and i + 1 < len(lines) and lines[i + 1].startswith("```"):
                end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("```")), None)
                if end is None:
                    sys.exit(f"check-docs: {f.relative_to(ROOT)}:{i + 2}: the block never closes")
                lang = lines[i + 1][3:].strip()
                yield f.relative_to(ROOT), i + 2, lang, "\n".join(lines[i + 2:end])


def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def port_base():
    """A REST port P whose dev-cluster siblings (P+1, gRPC, admin) are free too."""
    for p in range(18080, 30000, 10):
        if all(free(x) for x in (p, p + 1, p - 8080 + 50051, p - 8080 + 50052,
                                 p - 8080 + 9090, p - 8080 + 9091)):
            return p
    sys.exit("check-docs: no free ports")


def moved(text, base):
    shift = base - 8080
    def repl(m):
        return f"{m.group(1)}:{int(m.group(2)) + shift}"
    return re.sub(r"(localhost|127\.0\.0\.1):(808[0-9]|5005[0-9]|909[0-9])\b", repl, text)


def run_rust(rust, work, env):
    """Runs the marked Rust blocks as doc tests of `aerolith-client`, one at a time (each on
    collections of its own); how many failed."""
    doc = work / "rust-examples.md"
    # Doc tests are named by the line of their block's fence in `doc`: map it back.
    parts, where, at = [], {}, 1
    for f, line, text in rust:
        part = f"{f}:{line}\n\n```rust\n{text}\n```\n"
        where[at + 2] = f"{f}:{line}"
        parts.append(part)
        at += part.count("\n") + 1
    doc.write_text("\n".join(parts))
    cargo_env = dict(env, AEROLITH_DOCS_RUST=str(doc),
                     RUSTDOCFLAGS=(env.get("RUSTDOCFLAGS", "") + " --cfg aerolith_docs").strip())
    r = subprocess.run(["cargo", "test", "--locked", "-p", "aerolith-client", "--features", "grpc",
                        "--doc", "--", "docs_examples", "--test-threads", "1"],
                       cwd=ROOT, env=cargo_env, capture_output=True, text=True, timeout=1800)
    outcome = {int(m.group(1)): m.group(2) for m in
               re.finditer(r"^test .*docs_examples \(line (\d+)\) \.\.\. (\w+)$", r.stdout, re.M)}
    failed = 0
    for fence, name in where.items():
        if outcome.get(fence) == "ok":
            print(f"ok: {name} (rust)")
        else:
            failed += 1
            print(f"FAILED: {name} (rust: {outcome.get(fence, 'did not run')})")
    if failed or r.returncode != 0:
        print(f"{r.stdout[-6000:]}{r.stderr[-3000:]}")
    return failed or (r.returncode != 0)


def main():
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    binary = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else f"{target}/debug/aerolith")
    if not binary.exists():
        sys.exit(f"check-docs: {binary} is missing; build it first (cargo build -p aerolith-cli)")
    python = None
    if any(lang == "python" for _, _, lang, _ in blocks()):
        python = with_package(pathlib.Path(os.environ.get("AEROLITH_DOCS_VENV", "/var/tmp/aerolith-venv-docs")),
                              ROOT / "clients" / "python")
    base = port_base()
    work = pathlib.Path(tempfile.mkdtemp(prefix="aerolith-docs-"))
    # The docs assume a plain dev cluster: no tokens, no TLS, whatever this shell has set.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AEROLITH_AUTH", "AEROLITH_TLS", "AEROLITH_TOKEN",
                                "AEROLITH_RATE", "AEROLITH_MAX_IN_FLIGHT"))}
    dev = subprocess.Popen(
        [str(binary), "dev", "--data-dir", str(work / "data"), "--port-base", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    failed = 0
    ran = 0
    try:
        endpoints = work / "data" / "endpoints.json"
        deadline = time.time() + 120
        while not endpoints.exists():
            if dev.poll() is not None or time.time() > deadline:
                sys.exit("check-docs: aerolith dev did not become ready")
            time.sleep(0.2)
        dcs = json.loads(endpoints.read_text())["dcs"]
        env.update(PATH=f"{binary.parent}:{os.environ['PATH']}",
                   AEROLITH_ENDPOINT=f"http://{dcs[0]['http']}",
                   AEROLITH_ADMIN_ENDPOINT=f"http://{dcs[0]['admin']}")
        rust = []
        for f, line, lang, text in blocks():
            if lang == "rust":
                rust.append((f, line, moved(text, base)))
                continue
            ran += 1
            command = [str(python), "-c"] if lang == "python" else ["bash", "-eu", "-c"]
            r = subprocess.run([*command, moved(text, base)], cwd=work, env=env,
                               capture_output=True, text=True, timeout=120)
            # curl -s exits 0 on any HTTP status: a server error in the output fails too.
            broken = SERVER_ERROR.search(r.stdout)
            if r.returncode == 0 and not broken:
                print(f"ok: {f}:{line}")
            elif broken:
                failed += 1
                print(f"FAILED: {f}:{line}: a server error: {broken.group(0)}\n{r.stdout[-2000:]}")
            else:
                failed += 1
                print(f"FAILED: {f}:{line} (exit {r.returncode})\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        if rust:
            ran += len(rust)
            failed += run_rust(rust, work, env)
    finally:
        dev.send_signal(signal.SIGTERM)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dev.kill()
            dev.wait()
    if ran == 0:
        sys.exit("check-docs: no marked blocks found")
    if failed:
        sys.exit(f"check-docs: {failed} of {ran} blocks failed")
    print(f"check-docs: {ran} blocks ran")


if __name__ == "__main__":
    main()
