"""What the API answers, as typed values. A collection is typed by the class its documents'
`data` decode to: a dict (the default), a dataclass, or anything with a `Codec`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Literal, TypeVar, Union, cast

from .errors import AerolithError, from_error

T = TypeVar("T")
JSON = Any
#: A merge patch (RFC 7396, a dict) or a JSON Patch (RFC 6902, a list of operations).
Patch = Union[dict[str, Any], list[dict[str, Any]]]
WriteConcern = Literal["local", "all"]
ConflictStrategy = Literal["lww", "siblings", "field_merge"]


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How a collection's `data` turns into `T` and back."""

    decode: Callable[[dict[str, Any]], T]
    encode: Callable[[T], dict[str, Any]]

    @staticmethod
    def for_type(cls: type[T] | None) -> "Codec[T]":
        """dict (or None, or a TypedDict): as is; a dataclass: its fields, by keyword;
        a class with `from_json`/`to_json` (e.g. a pydantic-style model): those."""
        if cls is None or cls is dict or _is_typeddict(cls):
            return cast("Codec[T]", Codec(_identity, _identity))
        if dataclasses.is_dataclass(cls):
            names = {f.name for f in dataclasses.fields(cls)}

            def decode(data: dict[str, Any]) -> T:
                # Fields the class does not know (written by a newer program) are left out.
                return cast(T, cls(**{k: v for k, v in data.items() if k in names}))
            return Codec(decode, lambda v: dataclasses.asdict(cast(Any, v)))
        if hasattr(cls, "from_json") and hasattr(cls, "to_json"):
            return Codec(cast(Any, cls).from_json, lambda v: cast(Any, v).to_json())
        raise TypeError(f"no codec for {cls!r}: use a dict, a dataclass, or pass codec=Codec(decode, encode)")


def _identity(v: Any) -> Any:
    return v


def _is_typeddict(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, dict) and hasattr(cls, "__annotations__")


@dataclass
class Conflict(Generic[T]):
    """A sibling of a `siblings` collection's document."""

    version: str
    updated_at: str
    origin: str
    data: T


@dataclass
class Document(Generic[T]):
    collection: str
    id: str
    version: str
    updated_at: str
    origin: str
    data: T
    conflicts: list[Conflict[T]] = field(default_factory=list)
    #: For a write: True when it created the document (HTTP 201).
    created: bool = False

    @staticmethod
    def parse(body: dict[str, Any], codec: Codec[T], created: bool = False) -> "Document[T]":
        return Document(
            collection=body["collection"], id=body["id"], version=body["version"],
            updated_at=body["updated_at"], origin=body["origin"], data=codec.decode(body["data"]),
            conflicts=[Conflict(c["version"], c["updated_at"], c["origin"], codec.decode(c["data"]))
                       for c in body.get("conflicts") or []],
            created=created)


@dataclass
class Page(Generic[T]):
    documents: list[Document[T]]
    next_cursor: str | None
    #: With explain=True: one step per storage node, `{"node", "index", "examined"}`.
    plan: list[dict[str, Any]] | None = None

    @staticmethod
    def parse(body: dict[str, Any], codec: Codec[T]) -> "Page[T]":
        return Page([Document.parse(d, codec) for d in body.get("documents", [])],
                    body.get("next_cursor"), body.get("plan"))


@dataclass
class Change(Generic[T]):
    """One change-feed event. `data` is None for a delete."""

    op: Literal["put", "delete"]
    collection: str
    id: str
    version: str
    updated_at: str
    origin: str
    data: T | None
    token: str

    @staticmethod
    def parse(body: dict[str, Any], codec: Codec[T]) -> "Change[T]":
        data = body.get("data")
        return Change(body["op"], body["collection"], body["id"], body.get("version", ""),
                      body.get("updated_at", ""), body.get("origin", ""),
                      None if data is None else codec.decode(data), body["token"])


@dataclass
class ChangePage(Generic[T]):
    """One poll of the change feed; `next` resumes after it."""

    changes: list[Change[T]]
    next: str


@dataclass
class CollectionInfo:
    name: str
    conflict_strategy: str
    created_at: str | None = None
    #: For `create`: True when this call created it (HTTP 201).
    created: bool = False


@dataclass
class Index:
    name: str
    fields: list[dict[str, Any]]
    state: str
    progress: float | None = None
    reason: str | None = None


@dataclass
class BulkOp:
    """One operation of a bulk write. Build them with `BulkOp.put`, `.patch` and `.delete`.
    `body` is a put's data or a patch's patch."""

    op: Literal["put", "delete", "patch"]
    id: str | None = None
    body: Any = None
    if_match: str | None = None

    @staticmethod
    def put(id: str | None, data: Any, *, if_match: str | None = None) -> "BulkOp":
        """A put; `id=None` creates the document under a generated id."""
        return BulkOp("put", id, data, if_match)

    @staticmethod
    def patch(id: str, patch: Patch, *, if_match: str | None = None) -> "BulkOp":
        """A merge patch (a dict) or a JSON Patch (a list)."""
        return BulkOp("patch", id, patch, if_match)

    @staticmethod
    def delete(id: str, *, if_match: str | None = None) -> "BulkOp":
        return BulkOp("delete", id, None, if_match)

    def to_json(self, encode: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        if self.id is not None:
            out["id"] = self.id
        if self.op == "put":
            out["data"] = encode(self.body)
        elif self.op == "patch":
            out["patch"] = self.body
        if self.if_match is not None:
            out["if_match"] = self.if_match
        return out


@dataclass
class BulkResult:
    """One op's outcome, in op order: `status` is the HTTP status the op alone would have
    answered; `error` is the exception it would have raised (None on success)."""

    id: str | None
    status: int
    version: str | None = None
    error: AerolithError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @staticmethod
    def parse(body: dict[str, Any]) -> "BulkResult":
        err = body.get("error")
        return BulkResult(body.get("id"), body["status"], body.get("version"),
                          from_error(err, body["status"]) if err else None)
