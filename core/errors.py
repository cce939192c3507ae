"""The one exception hierarchy of OneCity.

Two roots. :class:`OneCityError` is every error a client may see: domains raise its
subclasses, and ``bff`` maps every one of them to an RFC 9457 problem document in one place.
Each class fixes the HTTP status and the stable ``type`` slug clients switch on, so a domain
never thinks about HTTP and the app never invents a status. :class:`OperatorError` is every
error only the operator sees (configuration, start-up, migrations, a command's refusal): it
stops a process or a command with a message saying what to fix, and never reaches a client
(a request that meets one is an unexpected 500).

A domain's own error derives from the class whose status it answers with, e.g.
``class StaffAdminError(Conflict)``, or from :class:`OperatorError` when only an operator
meets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "Conflict",
    "DependencyUnavailable",
    "Forbidden",
    "InsufficientLevel",
    "InvalidValue",
    "JsonTooDeep",
    "NotFound",
    "OneCityError",
    "OperatorError",
    "RateLimited",
    "Unauthorized",
    "UnprocessableEntity",
]


class OneCityError(Exception):
    """Base of every error a client may see.

    Args:
        detail: Human-readable explanation for this occurrence. Never put a secret, a token,
            a phone or an ID number in it: it is sent to the client and logged.
        extensions: Extra problem members (RFC 9457 section 3.2), e.g. ``{"field": "phone"}``.
        headers: Response headers to add, e.g. ``Retry-After``.
    """

    status: ClassVar[int] = 400
    type_slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        extensions: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extensions = dict(extensions or {})
        self.headers = dict(headers or {})


class OperatorError(Exception):
    """Base of every error only the operator sees: configuration, start-up, migrations, commands.

    The message says what to fix; like a problem's detail it never holds a secret.
    """


class BadRequest(OneCityError):
    """The request is malformed in a way no schema caught."""


class JsonTooDeep(BadRequest):
    """A JSON body nests arrays/objects deeper than any OneCity schema does (refused unread)."""

    type_slug = "json-too-deep"
    title = "JSON nested too deeply"


class InvalidValue(BadRequest):
    """A value passed the schema but cannot be stored or computed with (encoding, range)."""

    type_slug = "invalid-value"
    title = "Invalid value"


class UnprocessableEntity(OneCityError):
    """The request is well-formed but its content is refused (e.g. a bad check digit)."""

    status = 422
    type_slug = "unprocessable"
    title = "Request content refused"


class Unauthorized(OneCityError):
    """No valid credentials. ``headers`` should carry ``WWW-Authenticate``."""

    status = 401
    type_slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None, *, error: str = "invalid_token", **kwargs: Any) -> None:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("WWW-Authenticate", f'Bearer error="{error}"')
        super().__init__(detail, headers=headers, **kwargs)


class InsufficientLevel(Unauthorized):
    """The account's level is below what the endpoint needs (RFC 9470 step-up)."""

    type_slug = "insufficient-user-authentication"
    title = "A higher identity level is required"

    def __init__(self, required: str, detail: str | None = None) -> None:
        super().__init__(
            detail or f"This needs identity level {required}",
            headers={
                "WWW-Authenticate": f'Bearer error="insufficient_user_authentication", acr_values="{required}"',
            },
            extensions={"required_level": required},
        )


class Forbidden(OneCityError):
    """Authenticated, but not allowed to do this."""

    status = 403
    type_slug = "forbidden"
    title = "Not allowed"


class NotFound(OneCityError):
    """The resource does not exist (or the caller may not know it does)."""

    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(OneCityError):
    """The request conflicts with the current state (e.g. an ID number already verified)."""

    status = 409
    type_slug = "conflict"
    title = "Conflict"


class RateLimited(OneCityError):
    """Too many attempts; ``retry_after`` seconds until the next may succeed."""

    status = 429
    type_slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None, **kwargs: Any) -> None:
        headers = dict(kwargs.pop("headers", None) or {})
        headers["Retry-After"] = str(max(1, int(retry_after)))
        super().__init__(detail, headers=headers, **kwargs)
        self.retry_after = max(1, int(retry_after))


class DependencyUnavailable(OneCityError):
    """A dependency OneCity cannot work without (PostgreSQL, Redis, a department) is down."""

    status = 503
    type_slug = "unavailable"
    title = "Temporarily unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 2, **kwargs: Any) -> None:
        headers = dict(kwargs.pop("headers", None) or {})
        headers["Retry-After"] = str(retry_after)
        super().__init__(detail, headers=headers, **kwargs)
