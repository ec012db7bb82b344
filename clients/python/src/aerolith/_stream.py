"""A change stream's state, free of I/O: the subscription it sends, what it makes of each
frame, and the last token it saw (where it resumes after a disconnect)."""
from __future__ import annotations

import time
from typing import Any, Generator, Generic, TypeVar, Union

from . import errors
from ._core import Endpoint, Settings
from .types import Change, Codec

T = TypeVar("T")

#: With no frame for this long (the server pings every 15 s and sends a checkpoint after 2 s
#: of a quiet feed), the connection is taken for dead and the stream reconnects.
IDLE_TIMEOUT = 35.0


#: What a failed connection attempt may raise; anything else ends the stream.
CONNECT_ERRORS = (errors.Unavailable, errors.RateLimited, errors.DeadlineExceeded, OSError, TimeoutError,
                  EOFError)


class Reconnect(Exception):
    """The stream should reconnect and resume from its last token."""


class StreamState(Generic[T]):
    def __init__(self, settings: Settings, collection: str, codec: Codec[T],
                 filter: dict[str, Any] | None, since: str | None) -> None:
        self.settings = settings
        self.collection = collection
        self.codec = codec
        self.filter = filter
        #: The last token seen: a change's, a checkpoint's or the subscription's start.
        self.token = since
        #: The gateway whose DC the token belongs to (tokens name a DC).
        self.home: Endpoint | None = None
        self.current: Endpoint | None = None
        #: How many times the stream reconnected after losing its connection.
        self.reconnects = 0
        self.connected_once = False
        #: Gateways that answered the token belongs to another DC.
        self.wrong_dc: set[Endpoint] = set()
        #: Whether the current connection's subscription was confirmed.
        self.subscribed = False
        #: After a subscription refused before its confirmation: when the next attempt may
        #: start, the pause before it, and since when refusals have gone on.
        self.retry_at = 0.0
        self.pause = 0.0
        self.refused_since: float | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.settings.token} if self.settings.token else {}

    def order(self) -> list[Endpoint]:
        """Where to (re)connect: the token's gateway first, then the others, those that
        said the token belongs to another DC last."""
        order = self.settings.order()
        if self.home in order:
            order.remove(self.home)
            order.insert(0, self.home)
        return sorted(order, key=lambda e: e in self.wrong_dc)

    def subscribe(self, endpoint: Endpoint) -> dict[str, Any]:
        self.current = endpoint
        self.subscribed = False
        frame: dict[str, Any] = {"type": "subscribe", "sub": "s", "collection": self.collection}
        if self.filter is not None:
            frame["filter"] = self.filter
        if self.token is not None:
            frame["since"] = self.token
        return frame

    def handle(self, frame: dict[str, Any]) -> Change[T] | None:
        """The change a frame carries, or None; raises Reconnect or the API error that ends
        the stream (`resume_token_expired`, `not_found` once the collection is deleted, ...)."""
        kind = frame.get("type")
        if kind == "subscribed":
            self.wrong_dc.clear()
            self.subscribed = True
            if self.connected_once:
                self.reconnects += 1
            self.connected_once = True
            self.pause = 0.0
            self.refused_since = None
        if kind in ("subscribed", "checkpoint"):
            self.token = frame["token"]
            self.home = self.current
            return None
        if kind == "change":
            change = Change.parse(frame, self.codec)
            self.token = change.token
            self.home = self.current
            return change
        if kind == "error":
            err = errors.from_error(frame.get("error"))
            if isinstance(err, (errors.RateLimited, errors.Unavailable, errors.DeadlineExceeded)):
                # A slow consumer (or too many subscriptions), a gateway going away, a feed
                # that could not open in time.
                raise Reconnect(str(err))
            if isinstance(err, errors.InvalidArgument) and "belongs to DC" in err.message:
                # A gateway of another DC does not take the token: try the others, unless
                # every one has refused it.
                assert self.current is not None
                self.wrong_dc.add(self.current)
                if not self.wrong_dc.issuperset(self.settings.endpoints):
                    raise Reconnect(str(err))
            raise err
        return None

    def lost(self, reconnect_timeout: float | None, why: BaseException) -> None:
        """The connection is gone. Before its subscription was confirmed that is a refused
        attempt: the next one waits (50 ms, doubling to 2 s), and once refusals have gone on
        past `reconnect_timeout` the stream ends with `Unavailable`."""
        if self.subscribed:
            return
        now = time.monotonic()
        if self.refused_since is None:
            self.refused_since = now
        elif reconnect_timeout is not None and now - self.refused_since > reconnect_timeout:
            raise errors.Unavailable(f"change stream: no gateway took the subscription: {why}")
        self.pause = min(max(self.pause * 2, 0.05), 2.0)
        self.retry_at = now + self.pause

    def connect_steps(self, reconnect_timeout: float | None) -> Generator[Union[Endpoint, float], BaseException | None, None]:
        """Where to try to connect next (an endpoint), or how long to wait first (seconds):
        each endpoint in turn, with growing pauses between rounds; it is told each attempt's
        error (None: connected, and it ends). `Unavailable` once `reconnect_timeout` passed."""
        started = time.monotonic()
        backoff = 0.05
        last: BaseException | None = None
        while True:
            for endpoint in self.order():
                last = yield endpoint
                if last is None:
                    return
            if reconnect_timeout is not None and time.monotonic() - started > reconnect_timeout:
                raise errors.Unavailable(f"change stream: no gateway took the subscription: {last!r}")
            yield backoff
            backoff = min(backoff * 2, 2.0)


class StreamBase(Generic[T]):
    """What the blocking and asyncio change streams share."""

    def __init__(self, settings: Settings, state: StreamState[T], reconnect_timeout: float | None,
                 idle_timeout: float) -> None:
        self.settings = settings
        self.state = state
        self.reconnect_timeout = reconnect_timeout
        self.idle_timeout = idle_timeout

    @property
    def token(self) -> str | None:
        """The last token seen: `changes(since=token)` resumes after it."""
        return self.state.token

    @property
    def reconnects(self) -> int:
        return self.state.reconnects
