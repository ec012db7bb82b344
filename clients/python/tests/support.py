"""What the tests share: the `aerolith` binary (AEROLITH_BIN), clusters on free ports, a
retry-until-deadline helper, and small HTTP servers that stand in for a gateway."""
from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import json
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
from typing import Any, Callable

AEROLITH = os.environ.get("AEROLITH_BIN", "aerolith")
WAIT = 30.0


def until(what: str, check: Callable[[], Any], within: float = WAIT) -> Any:
    """Retries `check` until it returns something truthy, or fails saying `what`."""
    deadline = time.monotonic() + within
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except Exception as e:  # noqa: BLE001 - kept for the failure message
            last = e
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {within} s (last: {last!r})")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _all_free(ports: list[int]) -> bool:
    held: list[socket.socket] = []
    try:
        for port in ports:
            held.append(socket.socket())
            held[-1].bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in held:
            s.close()


def dev_port_base(start: int, dcs: int) -> int:
    """A `--port-base` from `start` on whose REST, gRPC and admin ports are all free."""
    return next(p for p in range(start, 65535 - 50051 + 8080 - dcs, 10)
                if _all_free([p - 8080 + off + i for off in (8080, 50051, 9090) for i in range(dcs)]))


def admin(base: str, method: str, path: str, body: Any = None) -> Any:
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
        return json.loads(text) if text else None


class DevCluster:
    """`aerolith dev --dcs 2` on free ports: `http` and `admin` per DC, as endpoints.json says."""

    def __init__(self, dcs: int = 2, nodes_per_dc: int = 2) -> None:
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="aerolith-pyclient-dev-"))
        base = dev_port_base(21080, dcs)
        self.log = open(self.work / "dev.log", "w")
        self.proc = subprocess.Popen(
            [AEROLITH, "dev", "--data-dir", str(self.work / "data"), "--dcs", str(dcs),
             "--nodes-per-dc", str(nodes_per_dc), "--port-base", str(base)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        endpoints = self.work / "data" / "endpoints.json"
        until("aerolith dev ready", lambda: self.proc.poll() is None and endpoints.exists(), within=120)
        self.dcs = json.loads(endpoints.read_text())["dcs"]
        self.endpoints_file = endpoints
        self.http = [f"http://{dc['http']}" for dc in self.dcs]
        self.admin = [f"http://{dc['admin']}" for dc in self.dcs]

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


class ProcessCluster:
    """One DC as separate processes: two storage nodes, a replicator and two gateways (`a`,
    `b`), so that one gateway can be stopped and started again alone."""

    def __init__(self) -> None:
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="aerolith-pyclient-procs-"))
        certs = self.work / "certs"
        subprocess.run([AEROLITH, "certs", "--out", str(certs)], check=True, stdout=subprocess.DEVNULL)
        nodes = {n: free_port(socket.SOCK_DGRAM) for n in ("n1", "n2")}

        def pair(role: str) -> str:
            return f'{{ cert = "{certs}/{role}.pem", key = "{certs}/{role}.key" }}'
        listed = ", ".join(f'{{ id = "{n}", rpc = "127.0.0.1:{p}" }}' for n, p in nodes.items())
        (self.work / "cluster.toml").write_text(
            f'name = "pyclient"\nshards = 16\n[tls]\nca = "{certs}/ca.pem"\n'
            f'storagenode = {pair("storagenode")}\ngateway = {pair("gateway")}\n'
            f'replicator = {pair("replicator")}\n[[dcs]]\nid = "dc1"\nnodes = [{listed}]\n')
        self.common = ["--config", str(self.work / "cluster.toml"), "--dc", "dc1"]
        self.log = open(self.work / "procs.log", "w")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for n in nodes:
            self.start(n, ["node", *self.common, "--node", n, "--data-dir", str(self.work / n),
                           "--new-store", "genesis"])
        self.start("replicator", ["replicator", *self.common, "--data-dir", str(self.work / "replicator"),
                                  "--listen", f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
                                  "--admin-listen", f"127.0.0.1:{free_port()}"])
        self.ports = {g: free_port() for g in ("a", "b")}
        for g in self.ports:
            self.start_gateway(g)
        self.url = {g: f"http://127.0.0.1:{p}" for g, p in self.ports.items()}

    def start(self, name: str, args: list[str]) -> None:
        self.procs[name] = subprocess.Popen([AEROLITH, *args], stdout=self.log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def start_gateway(self, g: str) -> None:
        self.start(g, ["gateway", *self.common, "--http-listen", f"127.0.0.1:{self.ports[g]}",
                       "--grpc-listen", f"127.0.0.1:{free_port()}"])
        url = f"http://127.0.0.1:{self.ports[g]}"

        def ready() -> bool:
            try:
                return bool(urllib.request.urlopen(url + "/readyz", timeout=2).status == 200)
            except OSError:
                return False
        until(f"gateway {g} ready", ready, within=120)

    def stop_gateway(self, g: str) -> None:
        p = self.procs.pop(g)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    handle: Callable[[http.server.BaseHTTPRequestHandler], None]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _any(self) -> None:
        self.server.handle(self)  # type: ignore[attr-defined]

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _any


class FakeGateway:
    """An HTTP server on a free port whose requests go to `handle(handler)`; it records each
    request's (method, path, headers)."""

    def __init__(self, handle: Callable[["FakeGateway", http.server.BaseHTTPRequestHandler], None]) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.server = _Server(("127.0.0.1", 0), _Handler)

        def wrapped(h: http.server.BaseHTTPRequestHandler) -> None:
            n = int(h.headers.get("Content-Length") or 0)
            h.body = h.rfile.read(n) if n else b""  # type: ignore[attr-defined]
            self.requests.append((h.command, h.path, {k.lower(): v for k, v in h.headers.items()}))
            handle(self, h)
        self.server.handle = wrapped
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def answer(h: http.server.BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    @staticmethod
    def forward(h: http.server.BaseHTTPRequestHandler, upstream: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """Sends the request on to `upstream` and returns its answer, unsent."""
        host, port = upstream.split("//")[1].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(h.command, h.path, body=h.body or None, headers=headers)  # type: ignore[attr-defined]
        r = conn.getresponse()
        out = (r.status, r.getheaders(), r.read())
        conn.close()
        return out

    @staticmethod
    def relay(h: http.server.BaseHTTPRequestHandler, answer: tuple[int, list[tuple[str, str]], bytes]) -> None:
        status, headers, body = answer
        h.send_response(status)
        for k, v in headers:
            if k.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeWsGateway:
    """A WebSocket endpoint on a free port: connection n (from 1) gets the frames
    `script(n, subscribe)` returns once its `subscribe` frame arrives, then silence until
    the client goes. `subscribes` holds every subscribe frame received."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, script: Callable[[int, dict[str, Any]], list[dict[str, Any]]]) -> None:
        from aerolith import _ws
        self.parse = _ws.parse_frame
        self.script = script
        self.subscribes: list[dict[str, Any]] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            head, buf = buf.split(b"\r\n\r\n", 1)
            key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))
            accept = base64.b64encode(hashlib.sha1(key + self.GUID.encode()).digest()).decode()
            conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            while (frame := self.parse(buf)) is None:
                buf += conn.recv(4096)
            subscribe = json.loads(frame[2])
            self.subscribes.append(subscribe)
            for message in self.script(len(self.subscribes), subscribe):
                data = json.dumps(message).encode()
                size = bytes([len(data)]) if len(data) < 126 else bytes([126]) + struct.pack("!H", len(data))
                conn.sendall(b"\x81" + size + data)
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
