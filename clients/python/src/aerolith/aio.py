"""The asyncio client: `AsyncClient`, `AsyncCollection`, async query iterators and change
streams. The same calls, retries and errors as the blocking client, over asyncio streams."""
from __future__ import annotations

import builtins
import asyncio
import time
from typing import Any, AsyncIterator, Generic, Iterable, Sequence, TypeVar, overload

from .errors import AerolithError
from ._core import Attempt, Call, Endpoint, Outcome, Response, Settings, Sleep, plan
from ._ops import ClientBase, CollectionOps, SortKey, query_body
from ._stream import CONNECT_ERRORS, IDLE_TIMEOUT, Reconnect, StreamBase, StreamState
from ._ws import MAX_MESSAGE, AsyncWebSocket, Closed
from .types import (BulkOp, BulkResult, Change, ChangePage, Codec, CollectionInfo, Document, Index,
                    Page, Patch, WriteConcern)

T = TypeVar("T")
R = TypeVar("R")
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[Response, bool]:
    """An HTTP/1.1 answer, and whether its connection may carry another request."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, _, rest = head.partition("\r\n")
    version, status_text = status_line.split(" ", 2)[:2]
    status = int(status_text)
    headers: dict[str, str] = {}
    for line in rest.split("\r\n"):
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body, keep = await reader.read(), False
    return Response(status, headers, body), keep


class _AsyncPool:
    """Keep-alive HTTP/1.1 connections per gateway over asyncio streams."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.idle: dict[Endpoint, list[Conn]] = {}

    async def send(self, a: Attempt) -> Outcome:
        idle = self.idle.get(a.endpoint) or []
        if idle:
            outcome = await self._exchange(idle.pop(), a)
            if outcome.response is not None or isinstance(outcome.error, TimeoutError):
                return outcome
            # A kept-alive connection the gateway had closed: once more on a new one.
        e = a.endpoint
        try:
            async with asyncio.timeout(a.wait):
                conn = await asyncio.open_connection(
                    e.host, e.port, ssl=self.settings.ssl_context if e.tls else None,
                    server_hostname=e.host if e.tls else None, limit=MAX_MESSAGE)
        except (OSError, TimeoutError) as err:
            return Outcome(error=err, sent=False)
        return await self._exchange(conn, a)

    async def _exchange(self, conn: Conn, a: Attempt) -> Outcome:
        reader, writer = conn
        head = [f"{a.method} {a.target} HTTP/1.1", f"Host: {a.endpoint.host}:{a.endpoint.port}",
                f"Content-Length: {len(a.body or b'')}"]
        head += [f"{k}: {v}" for k, v in a.headers.items()]
        try:
            async with asyncio.timeout(a.wait):
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (a.body or b""))
                await writer.drain()
                response, keep = await _read_response(reader, a.method)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as err:
            writer.close()
            return Outcome(error=err, sent=True)
        if keep:
            self.idle.setdefault(a.endpoint, []).append(conn)
        else:
            writer.close()
        return Outcome(response)

    async def close(self) -> None:
        for conns in self.idle.values():
            for _, writer in conns:
                writer.close()
        self.idle.clear()


class _AsyncRunner:
    def __init__(self, settings: Settings, pool: _AsyncPool) -> None:
        self.settings = settings
        self.pool = pool

    async def run(self, call: Call[R]) -> R:
        steps = plan(self.settings, call)
        step = next(steps)
        while True:
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                outcome = None
            else:
                outcome = await self.pool.send(step)
            try:
                step = steps.send(outcome)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


class AsyncQueryIterator(Generic[T]):
    """The documents of a query or listing (`async for`), fetched page by page; `cursor`
    is where the next page starts; `pages()` iterates whole pages."""

    def __init__(self, runner: _AsyncRunner, page: Any, cursor: str | None) -> None:
        self._runner = runner
        self._page = page
        self.cursor = cursor
        self.done = False

    async def pages(self) -> AsyncIterator[Page[T]]:
        while not self.done:
            page: Page[T] = await self._runner.run(self._page(self.cursor))
            self.cursor = page.next_cursor
            self.done = page.next_cursor is None
            yield page

    async def __aiter__(self) -> AsyncIterator[Document[T]]:
        async for page in self.pages():
            for doc in page.documents:
                yield doc

    async def all(self) -> list[Document[T]]:
        return [doc async for doc in self]


class AsyncChangeStream(StreamBase[T]):
    """`ChangeStream` for asyncio: `async for change in stream`."""

    ws: AsyncWebSocket | None = None

    def __aiter__(self) -> "AsyncChangeStream[T]":
        return self

    async def __anext__(self) -> Change[T]:
        while True:
            ws = self.ws or await self._connect()
            try:
                idle_left = max(0.001, ws.heard + self.idle_timeout - time.monotonic())
                change = self.state.handle(await ws.recv(idle_left))
            except (Closed, OSError, ValueError, Reconnect, asyncio.IncompleteReadError) as e:
                await self._drop()
                self.state.lost(self.reconnect_timeout, e)  # a refused subscription waits
                continue
            except AerolithError:
                await self._drop()  # the feed ended (an expired token, a deleted collection, ...)
                raise
            if change is not None:
                return change

    async def next(self, timeout: float) -> Change[T] | None:
        """The next change, or None when none came within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                return await self.__anext__()
        except TimeoutError:
            return None

    async def _connect(self) -> AsyncWebSocket:
        pause = self.state.retry_at - time.monotonic()
        if pause > 0:  # after a refused subscription
            await asyncio.sleep(pause)
        steps = self.state.connect_steps(self.reconnect_timeout)
        step = next(steps)
        while True:
            if isinstance(step, float):
                await asyncio.sleep(step)
                step = next(steps)
                continue
            try:
                ws = await AsyncWebSocket.open(step, "/v1/ws", self.state.headers(),
                                               self.settings.ssl_context, self.settings.timeout)
                await ws.send(self.state.subscribe(step))
            except (*CONNECT_ERRORS, Closed, asyncio.IncompleteReadError) as e:
                step = steps.send(e)
                continue
            self.ws = ws
            steps.close()
            return ws

    async def _drop(self) -> None:
        if self.ws is not None:
            ws, self.ws = self.ws, None
            await ws.close()

    async def close(self) -> None:
        await self._drop()

    async def __aenter__(self) -> "AsyncChangeStream[T]":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class AsyncCollection(Generic[T]):
    """`Collection` for asyncio: the same methods, awaited."""

    def __init__(self, runner: _AsyncRunner, ops: CollectionOps[T]) -> None:
        self._runner = runner
        self._ops = ops
        self.name = ops.name

    async def create(self, conflict_strategy: str | None = None, *, timeout: float | None = None) -> CollectionInfo:
        return await self._runner.run(self._ops.create_collection(self.name, conflict_strategy, timeout))

    async def info(self, *, timeout: float | None = None) -> CollectionInfo:
        return await self._runner.run(self._ops.get_collection(self.name, timeout))

    async def drop(self, *, timeout: float | None = None) -> None:
        await self._runner.run(self._ops.delete_collection(self.name, timeout))

    async def get(self, id: str, *, timeout: float | None = None) -> Document[T]:
        doc = await self._runner.run(self._ops.get(id, None, timeout))
        assert doc is not None
        return doc

    async def get_if_changed(self, id: str, version: str, *, timeout: float | None = None) -> Document[T] | None:
        return await self._runner.run(self._ops.get(id, version, timeout))

    async def put(self, id: str, data: T, *, if_match: str | None = None, if_none_match: str | None = None,
                  write_concern: WriteConcern | None = None, idempotency_key: str | None = None,
                  timeout: float | None = None) -> Document[T]:
        return await self._runner.run(self._ops.put(
            id, data, if_match=if_match, if_none_match=if_none_match, write_concern=write_concern,
            idempotency_key=idempotency_key, timeout=timeout))

    async def insert(self, data: T, *, write_concern: WriteConcern | None = None,
                     idempotency_key: str | None = None, timeout: float | None = None) -> Document[T]:
        return await self._runner.run(self._ops.insert(
            data, write_concern=write_concern, idempotency_key=idempotency_key, timeout=timeout))

    async def patch(self, id: str, patch: Patch, *, if_match: str | None = None,
                    write_concern: WriteConcern | None = None, idempotency_key: str | None = None,
                    timeout: float | None = None) -> Document[T]:
        return await self._runner.run(self._ops.patch(
            id, patch, if_match=if_match, write_concern=write_concern,
            idempotency_key=idempotency_key, timeout=timeout))

    async def delete(self, id: str, *, if_match: str | None = None, write_concern: WriteConcern | None = None,
                     idempotency_key: str | None = None, timeout: float | None = None) -> None:
        await self._runner.run(self._ops.delete(
            id, if_match=if_match, write_concern=write_concern, idempotency_key=idempotency_key,
            timeout=timeout))

    async def bulk(self, ops: Iterable[BulkOp], *, write_concern: WriteConcern | None = None,
                   idempotency_key: str | None = None, timeout: float | None = None) -> list[BulkResult]:
        return await self._runner.run(self._ops.bulk(
            ops, write_concern=write_concern, idempotency_key=idempotency_key, timeout=timeout))

    def list(self, *, page_size: int | None = None, cursor: str | None = None,
             timeout: float | None = None) -> AsyncQueryIterator[T]:
        return AsyncQueryIterator(self._runner, lambda c: self._ops.list_page(c, page_size, timeout), cursor)

    def query(self, filter: dict[str, Any] | None = None, *, sort: Sequence[SortKey] | None = None,
              projection: Sequence[str] | None = None, page_size: int | None = None,
              cursor: str | None = None, explain: bool = False,
              timeout: float | None = None) -> AsyncQueryIterator[T]:
        body = query_body(filter, sort, projection, page_size, explain)
        return AsyncQueryIterator(self._runner, lambda c: self._ops.query_page(body, c, timeout), cursor)

    async def count(self, filter: dict[str, Any] | None = None, *, timeout: float | None = None) -> int:
        return await self._runner.run(self._ops.count(filter, timeout))

    def changes(self, *, since: str | None = None, filter: dict[str, Any] | None = None,
                reconnect_timeout: float | None = None,
                idle_timeout: float = IDLE_TIMEOUT) -> AsyncChangeStream[T]:
        state = StreamState(self._runner.settings, self.name, self._ops.codec, filter, since)
        return AsyncChangeStream(self._runner.settings, state, reconnect_timeout, idle_timeout)

    async def poll_changes(self, since: str | None = None, *, limit: int | None = None,
                           timeout: float | None = None) -> ChangePage[T]:
        return await self._runner.run(self._ops.poll_changes(since, limit, timeout))

    async def create_index(self, name: str, fields: Sequence[SortKey], *, timeout: float | None = None) -> Index:
        return await self._runner.run(self._ops.create_index(name, fields, timeout))

    async def indexes(self, *, timeout: float | None = None) -> builtins.list[Index]:
        return await self._runner.run(self._ops.indexes(timeout))

    async def drop_index(self, name: str, *, timeout: float | None = None) -> None:
        await self._runner.run(self._ops.drop_index(name, timeout))


class AsyncClient(ClientBase):
    """`Client` for asyncio (use it from one event loop)."""

    _runner: _AsyncRunner

    def _runner_for(self, settings: Settings) -> _AsyncRunner:
        return _AsyncRunner(settings, _AsyncPool(settings))

    @overload
    def collection(self, name: str) -> AsyncCollection[dict[str, Any]]: ...
    @overload
    def collection(self, name: str, type: type[T]) -> AsyncCollection[T]: ...
    @overload
    def collection(self, name: str, *, codec: Codec[T]) -> AsyncCollection[T]: ...

    def collection(self, name: str, type: Any = None, *, codec: Any = None) -> AsyncCollection[Any]:
        return AsyncCollection(self._runner, CollectionOps(name, codec or Codec.for_type(type), self._session))

    async def list_collections(self, *, timeout: float | None = None) -> list[CollectionInfo]:
        return await self._runner.run(self._ops.list_collections(timeout))

    async def cluster(self, *, timeout: float | None = None) -> dict[str, Any]:
        return await self._runner.run(self._ops.cluster(timeout))

    async def close(self) -> None:
        if self._session is None:
            await self._runner.pool.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
