"""The blocking client: `Client`, `Collection`, query iterators and change streams."""
from __future__ import annotations

import builtins
import http.client
import threading
import time
from typing import Any, Generic, Iterable, Iterator, Sequence, TypeVar, overload

from .errors import AerolithError
from ._core import Attempt, Call, Endpoint, Outcome, Response, Settings, Sleep, plan
from ._ops import ClientBase, CollectionOps, SortKey, query_body
from ._stream import CONNECT_ERRORS, IDLE_TIMEOUT, Reconnect, StreamBase, StreamState
from ._ws import Closed, WebSocket
from .types import (BulkOp, BulkResult, Change, ChangePage, Codec, CollectionInfo, Document, Index,
                    Page, Patch, WriteConcern)

T = TypeVar("T")
R = TypeVar("R")


class _Pool:
    """Keep-alive HTTP connections per gateway."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.idle: dict[Endpoint, list[http.client.HTTPConnection]] = {}
        self.lock = threading.Lock()

    def _new(self, e: Endpoint, wait: float) -> http.client.HTTPConnection:
        if e.tls:
            return http.client.HTTPSConnection(e.host, e.port, timeout=wait,
                                               context=self.settings.ssl_context)
        return http.client.HTTPConnection(e.host, e.port, timeout=wait)

    def send(self, a: Attempt) -> Outcome:
        with self.lock:
            idle = self.idle.get(a.endpoint) or []
            conn = idle.pop() if idle else None
        if conn is not None:
            outcome = self._exchange(conn, a)
            if outcome.response is not None or isinstance(outcome.error, TimeoutError):
                return outcome
            # A kept-alive connection the gateway had closed: once more on a new one (a
            # write carries its idempotency key, so a second delivery applies nothing).
        conn = self._new(a.endpoint, a.wait)
        try:
            conn.connect()
        except OSError as e:
            conn.close()
            return Outcome(error=e, sent=False)
        return self._exchange(conn, a)

    def _exchange(self, conn: http.client.HTTPConnection, a: Attempt) -> Outcome:
        try:
            if conn.sock is not None:
                conn.sock.settimeout(a.wait)
            conn.request(a.method, a.target, body=a.body, headers=a.headers)
            r = conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            return Outcome(error=e, sent=True)
        if r.will_close:
            conn.close()
        else:
            with self.lock:
                self.idle.setdefault(a.endpoint, []).append(conn)
        return Outcome(Response(r.status, {k.lower(): v for k, v in r.getheaders()}, body))

    def close(self) -> None:
        with self.lock:
            for conns in self.idle.values():
                for c in conns:
                    c.close()
            self.idle.clear()


class _Runner:
    def __init__(self, settings: Settings, pool: _Pool) -> None:
        self.settings = settings
        self.pool = pool

    def run(self, call: Call[R]) -> R:
        steps = plan(self.settings, call)
        step = next(steps)
        while True:
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                outcome = None
            else:
                outcome = self.pool.send(step)
            try:
                step = steps.send(outcome)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


class QueryIterator(Generic[T]):
    """The documents of a query or listing, page by page as iteration needs them.
    `cursor` is where the next page starts (pass it as `cursor=` to resume later);
    `pages()` iterates whole pages instead."""

    def __init__(self, runner: _Runner, page: Any, cursor: str | None) -> None:
        self._runner = runner
        self._page = page
        self.cursor = cursor
        self.done = False

    def pages(self) -> Iterator[Page[T]]:
        while not self.done:
            page: Page[T] = self._runner.run(self._page(self.cursor))
            self.cursor = page.next_cursor
            self.done = page.next_cursor is None
            yield page

    def __iter__(self) -> Iterator[Document[T]]:
        for page in self.pages():
            yield from page.documents

    def all(self) -> list[Document[T]]:
        return list(self)


class ChangeStream(StreamBase[T]):
    """A collection's changes over the WebSocket API, as an iterator that never ends on its
    own: it keeps the last token it saw (`token`), and after a disconnect it reconnects (the
    token's gateway first, then the others) and resumes from that token, so every change
    arrives at least once and in order per document. It raises the errors that end a feed:
    `ResumeTokenExpired`, `NotFound` (the collection was deleted), `Unauthenticated`, ...;
    and `Unavailable` when it could not reconnect within `reconnect_timeout` (if set)."""

    ws: WebSocket | None = None

    def __iter__(self) -> "ChangeStream[T]":
        return self

    def __next__(self) -> Change[T]:
        change = self._next(None)
        assert change is not None
        return change

    def next(self, timeout: float) -> Change[T] | None:
        """The next change, or None when none came within `timeout` seconds (reconnecting
        included)."""
        return self._next(time.monotonic() + timeout)

    def _next(self, deadline: float | None) -> Change[T] | None:
        while deadline is None or time.monotonic() < deadline:
            ws = self.ws or self._connect(deadline)
            if ws is None:
                return None
            wait = self._idle_left(ws)
            if deadline is not None:
                wait = min(wait, max(0.001, deadline - time.monotonic()))
            try:
                change = self.state.handle(ws.recv(wait))
            except TimeoutError as e:
                if self._idle_left(ws) <= 0.001:
                    self._drop()  # silent for too long: taken for dead
                    self.state.lost(self.reconnect_timeout, e)
                continue
            except (Closed, OSError, ValueError, Reconnect) as e:
                self._drop()
                self.state.lost(self.reconnect_timeout, e)  # a refused subscription waits
                continue
            except AerolithError:
                self._drop()  # the feed ended (an expired token, a deleted collection, ...)
                raise
            if change is not None:
                return change
        return None

    def _idle_left(self, ws: WebSocket) -> float:
        return max(0.001, ws.heard + self.idle_timeout - time.monotonic())

    def _connect(self, deadline: float | None) -> WebSocket | None:
        """A connection with the subscription sent, or None once `deadline` passed."""
        pause = self.state.retry_at - time.monotonic()
        if pause > 0:  # after a refused subscription
            if deadline is not None and deadline - time.monotonic() < pause:
                time.sleep(max(0.0, deadline - time.monotonic()))
                return None
            time.sleep(pause)
        steps = self.state.connect_steps(self.reconnect_timeout)
        step = next(steps)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                steps.close()
                return None
            if isinstance(step, float):
                time.sleep(step if left is None else min(step, left))
                step = next(steps)
                continue
            try:
                ws = WebSocket(step, "/v1/ws", self.state.headers(), self.settings.ssl_context,
                               timeout=self.settings.timeout if left is None else min(self.settings.timeout, left))
            except (*CONNECT_ERRORS, Closed) as e:
                step = steps.send(e)
                continue
            try:
                ws.send(self.state.subscribe(step))
            except OSError as e:
                ws.close()
                step = steps.send(e)
                continue
            self.ws = ws
            steps.close()
            return ws

    def _drop(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> "ChangeStream[T]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Collection(Generic[T]):
    """One collection, whose documents' `data` are `T`. Every write takes `if_match`
    (a version), `write_concern` (`"local"` or `"all"`), `idempotency_key` (generated when
    not given, and reused on the call's retries) and `timeout` (seconds; the call's deadline,
    sent as `X-Aerolith-Timeout-Ms`)."""

    def __init__(self, runner: _Runner, ops: CollectionOps[T]) -> None:
        self._runner = runner
        self._ops = ops
        self.name = ops.name

    def create(self, conflict_strategy: str | None = None, *, timeout: float | None = None) -> CollectionInfo:
        """Creates the collection (201, `created=True`) or leaves it as it is (200)."""
        return self._runner.run(self._ops.create_collection(self.name, conflict_strategy, timeout))

    def info(self, *, timeout: float | None = None) -> CollectionInfo:
        return self._runner.run(self._ops.get_collection(self.name, timeout))

    def drop(self, *, timeout: float | None = None) -> None:
        """Deletes the collection and everything in it (needs an `admin` token)."""
        self._runner.run(self._ops.delete_collection(self.name, timeout))

    def get(self, id: str, *, timeout: float | None = None) -> Document[T]:
        doc = self._runner.run(self._ops.get(id, None, timeout))
        assert doc is not None
        return doc

    def get_if_changed(self, id: str, version: str, *, timeout: float | None = None) -> Document[T] | None:
        """The document, or None while its version is still `version` (`If-None-Match`, 304)."""
        return self._runner.run(self._ops.get(id, version, timeout))

    def put(self, id: str, data: T, *, if_match: str | None = None, if_none_match: str | None = None,
            write_concern: WriteConcern | None = None, idempotency_key: str | None = None,
            timeout: float | None = None) -> Document[T]:
        """Creates or replaces. `if_none_match="*"`: only create (`AlreadyExists` otherwise)."""
        return self._runner.run(self._ops.put(
            id, data, if_match=if_match, if_none_match=if_none_match, write_concern=write_concern,
            idempotency_key=idempotency_key, timeout=timeout))

    def insert(self, data: T, *, write_concern: WriteConcern | None = None,
               idempotency_key: str | None = None, timeout: float | None = None) -> Document[T]:
        """Creates a document under a server-generated id (a retry answers the same id)."""
        return self._runner.run(self._ops.insert(
            data, write_concern=write_concern, idempotency_key=idempotency_key, timeout=timeout))

    def patch(self, id: str, patch: Patch, *, if_match: str | None = None,
              write_concern: WriteConcern | None = None, idempotency_key: str | None = None,
              timeout: float | None = None) -> Document[T]:
        """A merge patch (a dict, RFC 7396) or a JSON Patch (a list, RFC 6902)."""
        return self._runner.run(self._ops.patch(
            id, patch, if_match=if_match, write_concern=write_concern,
            idempotency_key=idempotency_key, timeout=timeout))

    def delete(self, id: str, *, if_match: str | None = None, write_concern: WriteConcern | None = None,
               idempotency_key: str | None = None, timeout: float | None = None) -> None:
        self._runner.run(self._ops.delete(
            id, if_match=if_match, write_concern=write_concern, idempotency_key=idempotency_key,
            timeout=timeout))

    def bulk(self, ops: Iterable[BulkOp], *, write_concern: WriteConcern | None = None,
             idempotency_key: str | None = None, timeout: float | None = None) -> list[BulkResult]:
        """Up to 1000 ops; one result per op, in order (not atomic across documents)."""
        return self._runner.run(self._ops.bulk(
            ops, write_concern=write_concern, idempotency_key=idempotency_key, timeout=timeout))

    def list(self, *, page_size: int | None = None, cursor: str | None = None,
             timeout: float | None = None) -> QueryIterator[T]:
        """Every document, ordered by id."""
        return QueryIterator(self._runner, lambda c: self._ops.list_page(c, page_size, timeout), cursor)

    def query(self, filter: dict[str, Any] | None = None, *, sort: Sequence[SortKey] | None = None,
              projection: Sequence[str] | None = None, page_size: int | None = None,
              cursor: str | None = None, explain: bool = False,
              timeout: float | None = None) -> QueryIterator[T]:
        """The matching documents; `sort` keys are `"field"`, `"-field"` (descending) or
        `{"field", "order"}`."""
        body = query_body(filter, sort, projection, page_size, explain)
        return QueryIterator(self._runner, lambda c: self._ops.query_page(body, c, timeout), cursor)

    def count(self, filter: dict[str, Any] | None = None, *, timeout: float | None = None) -> int:
        return self._runner.run(self._ops.count(filter, timeout))

    def changes(self, *, since: str | None = None, filter: dict[str, Any] | None = None,
                reconnect_timeout: float | None = None,
                idle_timeout: float = IDLE_TIMEOUT) -> ChangeStream[T]:
        """A resumable stream of changes (WebSocket `subscribe`): from `since`, or from now."""
        state = StreamState(self._runner.settings, self.name, self._ops.codec, filter, since)
        return ChangeStream(self._runner.settings, state, reconnect_timeout, idle_timeout)

    def poll_changes(self, since: str | None = None, *, limit: int | None = None,
                     timeout: float | None = None) -> ChangePage[T]:
        """One page of the polled feed (`GET .../changes`); its `next` resumes after it."""
        return self._runner.run(self._ops.poll_changes(since, limit, timeout))

    def create_index(self, name: str, fields: Sequence[SortKey], *, timeout: float | None = None) -> Index:
        return self._runner.run(self._ops.create_index(name, fields, timeout))

    def indexes(self, *, timeout: float | None = None) -> builtins.list[Index]:
        return self._runner.run(self._ops.indexes(timeout))

    def drop_index(self, name: str, *, timeout: float | None = None) -> None:
        self._runner.run(self._ops.drop_index(name, timeout))


class Client(ClientBase):
    """A blocking client of one or more gateways (tried in order, skipping one that refuses
    connections or answers `unavailable`). Thread-safe.

        client = aerolith.Client(["http://127.0.0.1:8080", "http://127.0.0.1:8081"])
    """

    _runner: _Runner

    def _runner_for(self, settings: Settings) -> _Runner:
        return _Runner(settings, _Pool(settings))

    @overload
    def collection(self, name: str) -> Collection[dict[str, Any]]: ...
    @overload
    def collection(self, name: str, type: type[T]) -> Collection[T]: ...
    @overload
    def collection(self, name: str, *, codec: Codec[T]) -> Collection[T]: ...

    def collection(self, name: str, type: Any = None, *, codec: Any = None) -> Collection[Any]:
        """A collection whose documents' data are `type` (a dict by default, or a dataclass),
        or decode with `codec`."""
        return Collection(self._runner, CollectionOps(name, codec or Codec.for_type(type), self._session))

    def list_collections(self, *, timeout: float | None = None) -> list[CollectionInfo]:
        return self._runner.run(self._ops.list_collections(timeout))

    def cluster(self, *, timeout: float | None = None) -> dict[str, Any]:
        """`GET /v1/cluster`: this gateway's DC, its shards and every DC's nodes."""
        return self._runner.run(self._ops.cluster(timeout))

    def close(self) -> None:
        if self._session is None:
            self._runner.pool.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
