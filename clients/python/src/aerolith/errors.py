"""The API's error codes as one exception hierarchy: one class per code of API.md's table,
each with `.code`, `.status` (the HTTP status) and `.message`.

    try:
        users.get("nobody")
    except aerolith.NotFound as e:
        print(e.code, e.status, e.message)
"""
from __future__ import annotations

from typing import Any


class AerolithError(Exception):
    """Any error the API answered, or one the client raises in its name (a connection that
    could not be made to any gateway is `Unavailable`, a deadline that ran out on the client
    is `DeadlineExceeded`)."""

    code: str = "unknown"
    status: int = 0

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 session: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        #: The `X-Aerolith-Session` token the error response carried, if any.
        self.session = session
        #: For a write: the idempotency key its attempts carried; retrying the same write
        #: with `idempotency_key=` this key applies it at most once.
        self.idempotency_key: str | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidArgument(AerolithError):
    code, status = "invalid_argument", 400


class Unauthenticated(AerolithError):
    code, status = "unauthenticated", 401


class PermissionDenied(AerolithError):
    code, status = "permission_denied", 403


class NotFound(AerolithError):
    code, status = "not_found", 404


class AlreadyExists(AerolithError):
    code, status = "already_exists", 412


class PreconditionFailed(AerolithError):
    code, status = "precondition_failed", 412


class PayloadTooLarge(AerolithError):
    code, status = "payload_too_large", 413


class RateLimited(AerolithError):
    code, status = "rate_limited", 429


class ResumeTokenExpired(AerolithError):
    code, status = "resume_token_expired", 410


class Unavailable(AerolithError):
    code, status = "unavailable", 503

    @property
    def outcome_unknown(self) -> bool:
        """True when the gateway says a write may or may not have been applied."""
        return "outcome" in self.message and "unknown" in self.message


class DeadlineExceeded(AerolithError):
    code, status = "deadline_exceeded", 504


class Internal(AerolithError):
    code, status = "internal", 500


ERRORS: dict[str, type[AerolithError]] = {
    cls.code: cls for cls in (
        InvalidArgument, Unauthenticated, PermissionDenied, NotFound, AlreadyExists,
        PreconditionFailed, PayloadTooLarge, RateLimited, ResumeTokenExpired, Unavailable,
        DeadlineExceeded, Internal)
}

_BY_STATUS = {400: InvalidArgument, 401: Unauthenticated, 403: PermissionDenied, 404: NotFound,
              410: ResumeTokenExpired, 412: PreconditionFailed, 413: PayloadTooLarge,
              429: RateLimited, 503: Unavailable, 504: DeadlineExceeded}


def from_error(error: Any, status: int | None = None, session: str | None = None) -> AerolithError:
    """The exception for an API error object `{"code", "message"}` (a REST error body's
    `error`, a WebSocket error frame's `error`, a bulk result's `error`). An unknown code
    keeps its code on a plain `AerolithError`; a body without one is read by its status."""
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message", "") if isinstance(error, dict) else str(error or "")
    cls = ERRORS.get(code or "") or _BY_STATUS.get(status or 0)
    if cls is None:
        cls = Internal if (status or 0) >= 500 else AerolithError
    if code and code not in ERRORS:
        return AerolithError(str(message), status=status, code=code, session=session)
    return cls(str(message) or f"HTTP {status}", status=status, session=session)
