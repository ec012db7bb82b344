"""What the sync and asyncio clients share, free of I/O: endpoints, the session token, how a
request is built, and the retry policy as a generator that says what to send next (an
`Attempt`) or how long to wait (a `Sleep`) and is told how each attempt went (an `Outcome`).
`client.py` drives it with blocking sockets, `aio.py` with asyncio streams."""
from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Generic, Mapping, Sequence, TypeVar, Union

from . import errors
from .errors import AerolithError

R = TypeVar("R")

#: The longest deadline the server takes (API.md: at most 60000 ms).
MAX_TIMEOUT_MS = 60000
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int

    @staticmethod
    def parse(text: str) -> "Endpoint":
        """`http://host:port`, `https://host:port` or `host:port` (plain HTTP)."""
        if "://" not in text:
            text = "http://" + text
        u = urllib.parse.urlsplit(text)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not a gateway address: {text!r}")
        return Endpoint(u.scheme, u.hostname, u.port or (443 if u.scheme == "https" else 80))

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


class Settings:
    """A client's configuration and the little state its calls share: which gateway answered
    last (calls start there)."""

    def __init__(self, endpoints: str | Sequence[str], *, token: str | None = None,
                 ca_file: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 write_concern: str | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if not endpoints:
            raise ValueError("at least one gateway endpoint is needed")
        self.endpoints = [Endpoint.parse(e) for e in endpoints]
        self.token = token
        self.timeout = timeout
        self.write_concern = write_concern
        self.ssl_context = ssl_context
        if self.ssl_context is None and any(e.tls for e in self.endpoints):
            self.ssl_context = ssl.create_default_context(cafile=ca_file)
        self.preferred = 0

    def order(self) -> list[Endpoint]:
        """The endpoints, starting with the one that answered last."""
        n = len(self.endpoints)
        return [self.endpoints[(self.preferred + i) % n] for i in range(n)]

    def answered(self, endpoint: Endpoint) -> None:
        self.preferred = self.endpoints.index(endpoint)


class Session:
    """A session's token (`X-Aerolith-Session`): every call made through the session sends it
    and merges the token of the answer into it, so reads see the session's writes (and what
    it read before) through any gateway of any DC. Pass `.token` to another client's
    `session(token=...)` to carry the session over."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self._lock = threading.Lock()

    def update(self, token: str | None) -> None:
        if token:
            with self._lock:
                self.token = merge_session_tokens(self.token, token)


def merge_session_tokens(a: str | None, b: str) -> str:
    """The later point per (shard, DC) of two session tokens (DESIGN: `s1.` + base64url of a
    protobuf list of marks). Concurrent calls of one session each return the token they sent
    plus their own marks; merging keeps both. A token of another format: the newer one wins."""
    if not a or a == b:
        return b
    try:
        ma, mb = _marks(a), _marks(b)
    except ValueError:
        return b
    for k, v in ma.items():
        if k not in mb or mb[k] < v:
            mb[k] = v
    out = bytearray(_varint_field(1, 1))
    for (shard, dc), (epoch, seq) in sorted(mb.items()):
        mark = _varint_field(1, shard) + _bytes_field(2, dc.encode()) + _varint_field(3, epoch) + _varint_field(4, seq)
        out += _bytes_field(2, mark)
    return "s1." + base64.urlsafe_b64encode(bytes(out)).rstrip(b"=").decode()


def _marks(token: str) -> dict[tuple[int, str], tuple[int, int]]:
    if not token.startswith("s1."):
        raise ValueError("unknown session token format")
    raw = token[3:]
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except Exception as e:
        raise ValueError("not base64url") from e
    marks: dict[tuple[int, str], tuple[int, int]] = {}
    for num, value in _fields(data):
        if num == 1 and value != 1:
            raise ValueError("unknown session token version")
        if num == 2:
            m: dict[int, Any] = {1: 0, 2: b"", 3: 0, 4: 0}
            m.update(_fields(value))
            key = (m[1], m[2].decode())
            marks[key] = max(marks.get(key, (0, 0)), (m[3], m[4]))
    return marks


def _fields(data: Any) -> Generator[tuple[int, Any], None, None]:
    """(field number, value) of a protobuf message holding varints and length-delimited fields."""
    i = 0
    while i < len(data):
        tag, i = _read_varint(data, i)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _read_varint(data, i)
            yield num, value
        elif wire == 2:
            n, i = _read_varint(data, i)
            if i + n > len(data):
                raise ValueError("truncated")
            yield num, bytes(data[i:i + n])
            i += n
        else:
            raise ValueError("unexpected wire type")


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("bad varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _varint_field(num: int, v: int) -> bytes:
    return _varint(num << 3) + _varint(v) if v else b""


def _bytes_field(num: int, v: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(v)) + v


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Call(Generic[R]):
    """One logical API call: what to send, and how to read a successful answer."""

    method: str
    path: str
    parse: Callable[[Response], R]
    body: Any = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: A write: it gets an idempotency key, kept across its retries.
    write: bool = False
    idempotency_key: str | None = None
    timeout: float | None = None
    write_concern: str | None = None
    session: Session | None = None


@dataclass
class Attempt:
    endpoint: Endpoint
    method: str
    target: str
    headers: dict[str, str]
    body: bytes | None
    #: Seconds the transport may wait for the answer (the call's deadline, plus a margin for
    #: the server's own `deadline_exceeded` to arrive).
    wait: float


@dataclass
class Sleep:
    seconds: float


@dataclass
class Outcome:
    """How an attempt went: an answer, or a failure before anything was sent (`sent=False`:
    the connection was refused or could not be made) or after (`sent=True`: the outcome is
    unknown)."""

    response: Response | None = None
    error: BaseException | None = None
    sent: bool = False


Step = Union[Attempt, Sleep]


def quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def error_of(response: Response, session: str | None) -> AerolithError:
    try:
        body = response.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    return errors.from_error(err or {"message": response.body.decode("utf-8", "replace")[:200]},
                             response.status, session)


def plan(settings: Settings, call: Call[R]) -> Generator[Step, Outcome | None, R]:
    """The retry policy of one call, as API.md and the brief ask:

    - a gateway that refuses the connection, or answers `unavailable` (with the outcome
      known), is skipped: the next endpoint is tried, any call;
    - a write whose outcome is unknown (the gateway said so, or the connection broke after
      the request was sent) is retried with the same idempotency key, on the same gateway
      while it accepts connections (it knows where the first attempt went);
    - `rate_limited` waits `Retry-After` and retries, within the deadline;
    - every other error is raised at once;
    - all within the call's deadline, after which `DeadlineExceeded` is raised.
    """
    timeout = call.timeout if call.timeout is not None else settings.timeout
    deadline = time.monotonic() + timeout
    if call.write and call.idempotency_key is None:
        call.idempotency_key = uuid.uuid4().hex
    body = None
    if call.body is not None:
        body = call.body if isinstance(call.body, bytes) else json.dumps(call.body).encode()
    order = settings.order()
    i = 0          # the next endpoint in `order`
    pinned: Endpoint | None = None  # where an outcome-unknown write went
    failures: list[str] = []
    timed_out = False  # the last attempt ran out of time waiting for its answer
    backoff = 0.05
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _gave_up(call, failures, timeout, timed_out)
        endpoint = pinned or order[i % len(order)]
        headers = {"Accept": "application/json",
                   "X-Aerolith-Timeout-Ms": str(max(1, min(MAX_TIMEOUT_MS, int(remaining * 1000))))}
        if body is not None:
            headers["Content-Type"] = call.content_type
        if settings.token:
            headers["Authorization"] = "Bearer " + settings.token
        if call.idempotency_key:
            headers["Idempotency-Key"] = call.idempotency_key
        wc = call.write_concern or (settings.write_concern if call.write else None)
        if wc:
            headers["X-Aerolith-Write-Concern"] = wc
        if call.session is not None and call.session.token:
            headers["X-Aerolith-Session"] = call.session.token
        headers.update(call.headers)
        outcome = yield Attempt(endpoint, call.method, call.path, headers, body, remaining + 1.0)
        assert outcome is not None
        resp = outcome.response
        timed_out = isinstance(outcome.error, TimeoutError)
        if resp is None:
            failures.append(f"{endpoint}: {outcome.error!r}")
            if not outcome.sent:
                # Nothing reached the gateway: any call may go to the next one.
                pinned = None
                i += 1
            elif call.write:
                # The request went out and no answer came: its outcome is unknown. Retry it
                # with its key, where it went.
                pinned = endpoint
            else:
                i += 1
            if pinned or i % len(order) == 0:
                yield Sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, 1.0)
            continue
        session = resp.headers.get("x-aerolith-session")
        if call.session is not None:
            call.session.update(session)
        if resp.status < 400 or resp.status == 304:
            settings.answered(endpoint)
            return call.parse(resp)
        err = error_of(resp, session)
        err.idempotency_key = call.idempotency_key
        failures.append(f"{endpoint}: {err}")
        if isinstance(err, errors.Unavailable):
            if call.write and err.outcome_unknown:
                pinned = endpoint
            else:
                pinned = None
                i += 1
            if pinned or i % len(order) == 0:
                yield Sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, 1.0)
            continue
        if isinstance(err, errors.RateLimited):
            wait = _retry_after(resp.headers.get("retry-after"))
            if time.monotonic() + wait < deadline:
                yield Sleep(wait)
                continue
        raise err


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value or 1))
    except ValueError:
        return 1.0


def _gave_up(call: Call[Any], failures: list[str], timeout: float, timed_out: bool) -> AerolithError:
    """The deadline ran out: `DeadlineExceeded` when the last attempt was waiting for an
    answer, `Unavailable` when every gateway kept refusing or answering `unavailable`."""
    last = failures[-1] if failures else "no attempt finished"
    unknown = " (a write: its outcome is unknown; retry it with the same idempotency_key)" if call.write and failures else ""
    cls: type[AerolithError] = errors.Unavailable if failures and not timed_out else errors.DeadlineExceeded
    err = cls(f"{call.method} {call.path}: gave up after {timeout:g} s and {len(failures)} failed attempts; last: {last}{unknown}")
    err.idempotency_key = call.idempotency_key
    return err
