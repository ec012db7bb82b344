"""AerolithDB's Python client: REST and the WebSocket API, blocking (`Client`) and asyncio
(`AsyncClient`), standard library only. See docs/CLIENTS.md."""
from ._core import Session, merge_session_tokens
from .aio import AsyncChangeStream, AsyncClient, AsyncCollection, AsyncQueryIterator
from .client import ChangeStream, Client, Collection, QueryIterator
from .errors import (AerolithError, AlreadyExists, DeadlineExceeded, Internal, InvalidArgument,
                     NotFound, PayloadTooLarge, PermissionDenied, PreconditionFailed, RateLimited,
                     ResumeTokenExpired, Unauthenticated, Unavailable)
from .types import (BulkOp, BulkResult, Change, ChangePage, Codec, Conflict, CollectionInfo,
                    Document, Index, Page)

__version__ = "0.1.0"

__all__ = [
    "AerolithError", "AlreadyExists", "AsyncChangeStream", "AsyncClient", "AsyncCollection",
    "AsyncQueryIterator", "BulkOp", "BulkResult", "Change", "ChangePage", "ChangeStream",
    "Client", "Codec", "Collection", "CollectionInfo", "Conflict", "DeadlineExceeded",
    "Document", "Index", "Internal", "InvalidArgument", "NotFound", "Page", "PayloadTooLarge",
    "PermissionDenied", "PreconditionFailed", "QueryIterator", "RateLimited",
    "ResumeTokenExpired", "Session", "Unauthenticated", "Unavailable", "merge_session_tokens",
]
