"""A small RFC 6455 WebSocket client: the opening handshake, masked text frames, ping/pong
and close, no extensions. Frames are parsed from a buffer (`parse_frame`), which
`WebSocket` fills from a blocking socket and `AsyncWebSocket` from an asyncio stream. TLS comes from `ssl`."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import time
from typing import Any

from ._core import Endpoint

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
#: Larger messages than the server ever sends (its frames stop at 16 MiB) end the connection.
MAX_MESSAGE = 32 << 20


class Closed(Exception):
    """The connection ended (a close frame, or the stream ran out)."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"WebSocket closed ({code}: {reason})" if code else "WebSocket closed")
        self.code = code
        self.reason = reason


def handshake(endpoint: Endpoint, path: str, headers: dict[str, str]) -> tuple[bytes, str]:
    """The upgrade request and the `Sec-WebSocket-Accept` value its answer must carry."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {endpoint.host}:{endpoint.port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), accept


def check_handshake(head: bytes, accept: str) -> None:
    """Raises the API error of a refused upgrade, or ConnectionError for a malformed answer."""
    from . import errors
    text = head.decode("latin-1")
    status_line, _, rest = text.partition("\r\n")
    parts = status_line.split(" ", 2)
    headers = {}
    for line in rest.split("\r\n"):
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if len(parts) < 2 or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP answer to the upgrade: {status_line!r}")
    status = int(parts[1])
    if status != 101:
        raise errors.from_error({"message": f"WebSocket upgrade refused: {status_line}"}, status)
    if headers.get("sec-websocket-accept") != accept:
        raise ConnectionError("the WebSocket upgrade answer has a wrong Sec-WebSocket-Accept")


def encode(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + _unmask(payload, mask)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return payload
    # XOR a word at a time, through Python's big integers.
    reps = (len(payload) + 3) // 4
    key = int.from_bytes((mask * reps)[:len(payload)], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(len(payload), "big")


def parse_frame(buf: bytes | bytearray) -> tuple[bool, int, bytes, int] | None:
    """(fin, opcode, payload, bytes used) of the frame at the start of `buf`, or None while
    `buf` does not hold all of it yet (nothing is consumed, so a read that times out loses
    nothing)."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
    if b0 & 0x70:
        raise ConnectionError("a frame with reserved bits set (no extension was agreed)")
    at = 2
    if n == 126:
        if len(buf) < 4:
            return None
        (n,) = struct.unpack("!H", buf[2:4])
        at = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        (n,) = struct.unpack("!Q", buf[2:10])
        at = 10
    if n > MAX_MESSAGE:
        raise ConnectionError(f"a frame of {n} bytes")
    if masked:
        if len(buf) < at + 4:
            return None
        mask, at = bytes(buf[at:at + 4]), at + 4
    else:
        mask = b""
    if len(buf) < at + n:
        return None
    payload = bytes(buf[at:at + n])
    return fin, opcode, _unmask(payload, mask) if masked else payload, at + n


class Assembler:
    """Joins fragments into messages and says what to answer to control frames."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.opcode = 0

    def feed(self, fin: bool, opcode: int, payload: bytes) -> tuple[str | None, bytes | None]:
        """(a complete text message or None, a frame to send back or None). Raises Closed."""
        if opcode == PING:
            return None, encode(PONG, payload)
        if opcode == PONG:
            return None, None
        if opcode == CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            raise Closed(code, payload[2:].decode("utf-8", "replace"))
        if opcode != CONT:
            self.opcode, self.parts = opcode, []
        self.parts.append(payload)
        if sum(map(len, self.parts)) > MAX_MESSAGE:
            raise ConnectionError("a message over the size limit")
        if not fin:
            return None, None
        data, self.parts = b"".join(self.parts), []
        if self.opcode != TEXT:
            return None, None  # the API sends only text; binary messages are ignored
        return data.decode("utf-8"), None


def close_frame(code: int = 1000) -> bytes:
    return encode(CLOSE, struct.pack("!H", code))


class WebSocket:
    """A blocking WebSocket connection to a gateway."""

    def __init__(self, endpoint: Endpoint, path: str, headers: dict[str, str],
                 ssl_context: ssl.SSLContext | None, timeout: float) -> None:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
        try:
            if endpoint.tls:
                assert ssl_context is not None
                sock = ssl_context.wrap_socket(sock, server_hostname=endpoint.host)
            self.sock = sock
            self.buf = b""
            request, accept = handshake(endpoint, path, headers)
            sock.sendall(request)
            while b"\r\n\r\n" not in self.buf:
                self._fill()
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            check_handshake(head, accept)
        except BaseException:
            sock.close()
            raise
        self.assembler = Assembler()
        #: When the last frame arrived (time.monotonic()).
        self.heard = time.monotonic()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed(None, "the connection ended")
        self.buf += chunk

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(encode(TEXT, json.dumps(message).encode()))

    def recv(self, timeout: float | None) -> dict[str, Any]:
        """The next JSON message; raises Closed, TimeoutError (nothing within `timeout`) or
        OSError."""
        self.sock.settimeout(timeout)
        while True:
            frame = parse_frame(self.buf)
            if frame is None:
                self._fill()
                continue
            fin, opcode, payload, used = frame
            self.buf = self.buf[used:]
            self.heard = time.monotonic()
            text, reply = self.assembler.feed(fin, opcode, payload)
            if reply:
                self.sock.sendall(reply)
            if text is not None:
                return json.loads(text)  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            self.sock.settimeout(1.0)
            self.sock.sendall(close_frame())
        except OSError:
            pass
        finally:
            self.sock.close()


class AsyncWebSocket:
    """An asyncio WebSocket connection to a gateway; open it with `await AsyncWebSocket.open(...)`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.assembler = Assembler()
        #: When the last frame arrived (time.monotonic()).
        self.heard = time.monotonic()

    @staticmethod
    async def open(endpoint: Endpoint, path: str, headers: dict[str, str],
                   ssl_context: ssl.SSLContext | None, timeout: float) -> "AsyncWebSocket":
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                endpoint.host, endpoint.port, ssl=ssl_context if endpoint.tls else None,
                server_hostname=endpoint.host if endpoint.tls else None, limit=MAX_MESSAGE)
            try:
                request, accept = handshake(endpoint, path, headers)
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                check_handshake(head[:-4], accept)
            except BaseException:
                writer.close()
                raise
        return AsyncWebSocket(reader, writer)

    async def send(self, message: dict[str, Any]) -> None:
        self.writer.write(encode(TEXT, json.dumps(message).encode()))
        await self.writer.drain()

    async def recv(self, timeout: float | None) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = parse_frame(self.buf)
                if frame is None:
                    chunk = await self.reader.read(65536)
                    if not chunk:
                        raise Closed(None, "the connection ended")
                    self.buf += chunk
                    continue
                fin, opcode, payload, used = frame
                del self.buf[:used]
                self.heard = time.monotonic()
                text, reply = self.assembler.feed(fin, opcode, payload)
                if reply:
                    self.writer.write(reply)
                    await self.writer.drain()
                if text is not None:
                    return json.loads(text)  # type: ignore[no-any-return]

    async def close(self) -> None:
        try:
            self.writer.write(close_frame())
            async with asyncio.timeout(1.0):
                await self.writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            self.writer.close()
