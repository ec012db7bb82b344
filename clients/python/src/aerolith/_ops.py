"""Every REST operation as a `Call`: its path, headers and body, and how its answer reads.
The sync and asyncio collections only run these."""
from __future__ import annotations

import json
import pathlib
from typing import Any, Generic, Iterable, Self, Sequence, TypeVar, Union

from ._core import Call, Response, Session, Settings, quote
from .types import (BulkOp, BulkResult, ChangePage, Change, Codec, CollectionInfo, Document,
                    Index, Page, Patch)

T = TypeVar("T")
#: A sort key: `{"field": "age", "order": "desc"}`, or `"age"` / `"-age"` (descending).
SortKey = Union[str, dict[str, str]]


def sort_keys(sort: Sequence[SortKey] | None) -> list[dict[str, str]] | None:
    if sort is None:
        return None
    out = []
    for key in sort:
        if isinstance(key, str):
            desc = key.startswith("-")
            out.append({"field": key[1:] if desc else key, "order": "desc" if desc else "asc"})
        else:
            out.append(dict(key))
    return out


def _collection_info(r: Response) -> CollectionInfo:
    b = r.json()
    return CollectionInfo(b["name"], b["conflict_strategy"], b.get("created_at"), r.status == 201)


def _nothing(r: Response) -> None:
    return None


def _index(b: dict[str, Any]) -> Index:
    return Index(b["name"], b["fields"], b["state"], b.get("progress"), b.get("reason"))


def _etag(version: str) -> str:
    return version if version == "*" or version.startswith(('"', 'W/"')) else f'"{version}"'


class ClientOps:
    """Calls that name no collection, or name it as an argument."""

    def __init__(self, session: Session | None) -> None:
        self.session = session

    def call(self, method: str, path: str, parse: Any, **kw: Any) -> Call[Any]:
        return Call(method, path, parse, session=self.session, **kw)

    def list_collections(self, timeout: float | None) -> Call[list[CollectionInfo]]:
        return self.call("GET", "/v1/collections", lambda r: [
            CollectionInfo(c["name"], c["conflict_strategy"], c.get("created_at"))
            for c in r.json()["collections"]], timeout=timeout)

    def create_collection(self, name: str, conflict_strategy: str | None,
                          timeout: float | None) -> Call[CollectionInfo]:
        body = {} if conflict_strategy is None else {"conflict_strategy": conflict_strategy}
        return self.call("PUT", f"/v1/collections/{quote(name)}", _collection_info, body=body,
                         timeout=timeout)

    def get_collection(self, name: str, timeout: float | None) -> Call[CollectionInfo]:
        return self.call("GET", f"/v1/collections/{quote(name)}", _collection_info, timeout=timeout)

    def delete_collection(self, name: str, timeout: float | None) -> Call[None]:
        return self.call("DELETE", f"/v1/collections/{quote(name)}", _nothing, timeout=timeout)

    def cluster(self, timeout: float | None) -> Call[dict[str, Any]]:
        return self.call("GET", "/v1/cluster", lambda r: r.json(), timeout=timeout)


class CollectionOps(ClientOps, Generic[T]):
    """The calls of one collection, whose documents' data decode with `codec`."""

    def __init__(self, name: str, codec: Codec[T], session: Session | None) -> None:
        super().__init__(session)
        self.name = name
        self.codec = codec
        self.base = f"/v1/collections/{quote(name)}"

    def _doc(self, r: Response) -> Document[T]:
        return Document.parse(r.json(), self.codec, created=r.status == 201)

    def write(self, method: str, path: str, parse: Any, *, body: Any = None,
              content_type: str = "application/json", if_match: str | None = None,
              if_none_match: str | None = None, write_concern: str | None,
              idempotency_key: str | None, timeout: float | None) -> Call[Any]:
        headers = {}
        if if_match is not None:
            headers["If-Match"] = _etag(if_match)
        if if_none_match is not None:
            headers["If-None-Match"] = if_none_match
        return self.call(method, path, parse, body=body, content_type=content_type,
                         headers=headers, write=True, idempotency_key=idempotency_key,
                         write_concern=write_concern, timeout=timeout)

    def doc_path(self, id: str) -> str:
        return f"{self.base}/docs/{quote(id)}"

    def get(self, id: str, if_none_match: str | None, timeout: float | None) -> Call[Document[T] | None]:
        headers = {} if if_none_match is None else {"If-None-Match": _etag(if_none_match)}
        return self.call("GET", self.doc_path(id), lambda r: None if r.status == 304 else self._doc(r),
                         headers=headers, timeout=timeout)

    def put(self, id: str, data: T, **kw: Any) -> Call[Document[T]]:
        return self.write("PUT", self.doc_path(id), self._doc, body=self.codec.encode(data), **kw)

    def insert(self, data: T, **kw: Any) -> Call[Document[T]]:
        return self.write("POST", f"{self.base}/docs", self._doc, body=self.codec.encode(data), **kw)

    def patch(self, id: str, patch: Patch, **kw: Any) -> Call[Document[T]]:
        kind = "application/json-patch+json" if isinstance(patch, list) else "application/merge-patch+json"
        return self.write("PATCH", self.doc_path(id), self._doc, body=patch, content_type=kind, **kw)

    def delete(self, id: str, **kw: Any) -> Call[None]:
        return self.write("DELETE", self.doc_path(id), _nothing, **kw)

    def bulk(self, ops: Iterable[BulkOp], **kw: Any) -> Call[list[BulkResult]]:
        body = {"ops": [op.to_json(self.codec.encode) for op in ops]}
        return self.write("POST", f"{self.base}/bulk", lambda r: [
            BulkResult.parse(x) for x in r.json()["results"]], body=body, **kw)

    def list_page(self, cursor: str | None, limit: int | None, timeout: float | None) -> Call[Page[T]]:
        params = "&".join(p for p in (f"limit={limit}" if limit else "",
                                      f"cursor={quote(cursor)}" if cursor else "") if p)
        return self.call("GET", f"{self.base}/docs" + (f"?{params}" if params else ""),
                         lambda r: Page.parse(r.json(), self.codec), timeout=timeout)

    def query_page(self, query: dict[str, Any], cursor: str | None, timeout: float | None) -> Call[Page[T]]:
        body = {k: v for k, v in query.items() if v is not None}
        if cursor:
            body["cursor"] = cursor
        return self.call("POST", f"{self.base}/query", lambda r: Page.parse(r.json(), self.codec),
                         body=body, timeout=timeout)

    def count(self, filter: dict[str, Any] | None, timeout: float | None) -> Call[int]:
        return self.call("POST", f"{self.base}/count", lambda r: int(r.json()["count"]),
                         body={"filter": filter}, timeout=timeout)

    def poll_changes(self, since: str | None, limit: int | None, timeout: float | None) -> Call[ChangePage[T]]:
        params = "&".join(p for p in (f"since={quote(since)}" if since else "",
                                      f"limit={limit}" if limit else "") if p)
        return self.call("GET", f"{self.base}/changes" + (f"?{params}" if params else ""),
                         lambda r: ChangePage([Change.parse(c, self.codec) for c in r.json()["changes"]],
                                              r.json()["next"]), timeout=timeout)

    def create_index(self, name: str, fields: Sequence[SortKey], timeout: float | None) -> Call[Index]:
        keys = [{"path": k["field"], "order": k["order"]} for k in sort_keys(fields) or []]
        return self.call("PUT", f"{self.base}/indexes/{quote(name)}", lambda r: _index(r.json()),
                         body={"fields": keys}, timeout=timeout)

    def indexes(self, timeout: float | None) -> Call[list[Index]]:
        return self.call("GET", f"{self.base}/indexes",
                         lambda r: [_index(i) for i in r.json()["indexes"]], timeout=timeout)

    def drop_index(self, name: str, timeout: float | None) -> Call[None]:
        return self.call("DELETE", f"{self.base}/indexes/{quote(name)}", _nothing, timeout=timeout)


def query_body(filter: dict[str, Any] | None, sort: Sequence[SortKey] | None,
               projection: Sequence[str] | None, page_size: int | None, explain: bool) -> dict[str, Any]:
    return {"filter": filter, "sort": sort_keys(sort),
            "projection": None if projection is None else list(projection),
            "limit": page_size, "explain": True if explain else None}


class ClientBase:
    """What `Client` and `AsyncClient` share: configuration, endpoints and sessions."""

    def __init__(self, endpoints: str | Sequence[str], *, token: str | None = None,
                 ca_file: str | None = None, timeout: float = 10.0,
                 write_concern: str | None = None, _shared: Any = None,
                 _session: Session | None = None) -> None:
        if _shared is None:
            _shared = self._runner_for(Settings(endpoints, token=token, ca_file=ca_file,
                                                timeout=timeout, write_concern=write_concern))
        self._runner = _shared
        self._session = _session
        self._ops = ClientOps(_session)

    def _runner_for(self, settings: Settings) -> Any:
        raise NotImplementedError

    @classmethod
    def from_endpoints_file(cls, path: str | pathlib.Path, **kw: Any) -> Self:
        """A client of every gateway `aerolith dev` lists in its `endpoints.json`, first DC first."""
        dcs = json.loads(pathlib.Path(path).read_text())["dcs"]
        return cls([f"http://{dc['http']}" for dc in dcs], **kw)

    @property
    def endpoints(self) -> list[str]:
        return [str(e) for e in self._runner.settings.endpoints]

    def session(self, token: str | None = None) -> Self:
        """A view of this client whose calls carry a session token (`X-Aerolith-Session`),
        starting from `token` (another session's, possibly of another client)."""
        return type(self)([], _shared=self._runner, _session=Session(token))

    @property
    def session_token(self) -> str | None:
        """This session's token (None outside a session)."""
        return self._session.token if self._session else None
