"""RFC 9457 problem documents: the single place where errors become HTTP responses.

Every exception that can leave a handler ends here. Our own hierarchy
(:mod:`core.errors`) carries its status and ``type`` slug; Litestar's HTTP exceptions are
translated (validation errors name the field); PostgreSQL and Redis outages become 503 with
``Retry-After``; anything else is a 500 whose body says nothing about the cause, while the
log line carries the exception class and the request id for the operator.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import msgspec
import redis.exceptions
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap, HTTPResponseBodyEvent, HTTPResponseStartEvent, Scope, Send

from core.errors import OneCityError
from core.problem import PROBLEM_MEDIA_TYPE, FieldError, problem_document
from core.redis import is_unavailable

__all__ = ["exception_handlers", "problem_response", "send_problem"]


log = logging.getLogger("onecity.errors")

_STATUS_SLUGS: Mapping[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("unprocessable", "Request content refused"),
    429: ("rate-limited", "Too many requests"),
    503: ("unavailable", "Temporarily unavailable"),
}


def problem_response(
    request: Request[Any, Any, Any] | None,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response[dict[str, Any]]:
    """Build a problem+json response; ``extensions`` become extra members (RFC 9457 §3.2)."""
    body = problem_document(
        status=status,
        slug=slug,
        title=title,
        detail=detail,
        instance=request.url.path if request is not None else None,
        request_id=request.scope.get("state", {}).get("request_id") if request is not None else None,
        extensions=extensions,
    )
    return Response(content=body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=dict(headers or {}))


async def send_problem(
    scope: Scope,
    send: Send,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    extensions: Mapping[str, Any] | None = None,
) -> None:
    """Answer from ASGI middleware, before any route runs, with the same document as :func:`problem_response`.

    Args:
        scope: The request's scope (its path and request id go into the document).
        send: The ASGI ``send`` callable.
        status: The HTTP status.
        slug: The stable problem type.
        title: The problem type's short summary.
        detail: This occurrence's explanation.
        headers: Response headers besides ``content-type`` and ``content-length``.
        extensions: Extra members of the document.
    """
    payload = msgspec.json.encode(
        problem_document(
            status=status,
            slug=slug,
            title=title,
            detail=detail,
            instance=scope["path"],
            request_id=scope.get("state", {}).get("request_id"),
            extensions=extensions,
        )
    )
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(payload)).encode()),
            *headers,
        ],
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": payload, "more_body": False}
    await send(end)


# msgspec says "Expected `int`, got `str` - at `$.device.id`"; the field is the JSON path.
_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_NAMED_FIELD = re.compile(r"(?:unknown|required) field `([^`]+)`")


def _field_errors(exc: ValidationException) -> list[FieldError]:
    errors: list[FieldError] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not isinstance(item, Mapping):
            continue
        message = str(item.get("message", "invalid"))
        match = _AT_PATH.search(message)
        path = match.group(1) if match else ""
        if match:
            message = message[: match.start()]
        # "Object contains unknown field `x`" / "Object missing required field `x`" name the
        # field only inside the message; join it to the path of the object that holds it.
        named = _NAMED_FIELD.search(message)
        if named:
            path = f"{path}.{named.group(1)}" if path else named.group(1)
        # Litestar's own key for a body error is just "data": useless to a client.
        key = str(item.get("key") or "")
        field = path or (key if key not in ("", "data") else "body")
        errors.append(FieldError(field=field, message=message, source=item.get("source")))
    return errors


def _on_onecity_error(request: Request[Any, Any, Any], exc: OneCityError) -> Response[dict[str, Any]]:
    return problem_response(
        request,
        status=exc.status,
        slug=exc.type_slug,
        title=exc.title,
        detail=exc.detail,
        headers=exc.headers,
        extensions=exc.extensions,
    )


def _on_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    errors = _field_errors(exc)
    # Without field errors, Litestar's own message ("JSON is malformed") is safe to show.
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors) if errors else exc.detail
    return problem_response(
        request,
        status=400,
        slug="validation-error",
        title="Invalid request",
        detail=detail,
        extensions={"errors": errors or None, "field": errors[0].field if errors else None},
    )


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status >= 500:
        return _on_unexpected(request, exc)
    slug, title = _STATUS_SLUGS.get(status, ("client-error", "Request refused"))
    return problem_response(
        request,
        status=status,
        slug=slug,
        title=title,
        detail=exc.detail if exc.detail != title else None,
        headers=exc.headers,
    )


def _on_dependency_down(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.warning("dependency unavailable", extra={"error": exc.__class__.__name__, "path": request.url.path})
    return problem_response(
        request,
        status=503,
        slug="unavailable",
        title="Temporarily unavailable",
        detail="A storage service is unavailable; retry shortly.",
        headers={"Retry-After": "2"},
    )


def _on_invalid_value(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # A value the schema let through but PostgreSQL (class 22, data exception: bad encoding,
    # out-of-range date or number) or Python's date arithmetic cannot handle. The message may
    # quote the value, so only the class is logged. The transaction it ran in rolled back.
    log.warning("invalid value", extra={"error": exc.__class__.__name__, "path": request.url.path})
    return problem_response(
        request,
        status=400,
        slug="invalid-value",
        title="Invalid value",
        detail="A value in the request is out of range or cannot be stored.",
    )


def _on_redis_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # A Cluster failing over or losing a node (CLUSTERDOWN, TRYAGAIN, MOVED storms, a node
    # unreachable) is an outage to retry, like a single Redis down; anything else is a bug.
    if is_unavailable(exc):
        return _on_dependency_down(request, exc)
    return _on_unexpected(request, exc)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # The class name and request id are enough to find it; the message may hold input data.
    log.error("unhandled error", extra={"error": exc.__class__.__name__, "path": request.url.path})
    return problem_response(
        request, status=500, slug="internal-error", title="Internal error", detail="Something went wrong on our side."
    )


def exception_handlers() -> ExceptionHandlersMap:
    """The handler map for ``Litestar(exception_handlers=...)``."""
    return {
        OneCityError: _on_onecity_error,
        ValidationException: _on_validation_error,
        HTTPException: _on_http_exception,
        asyncpg.PostgresConnectionError: _on_dependency_down,
        asyncpg.InterfaceError: _on_dependency_down,
        asyncpg.CannotConnectNowError: _on_dependency_down,
        asyncpg.TooManyConnectionsError: _on_dependency_down,
        asyncpg.exceptions.ConnectionDoesNotExistError: _on_dependency_down,
        asyncpg.QueryCanceledError: _on_dependency_down,
        # A transaction pooler (PgBouncer) speaks for the server: its own errors arrive as
        # 08P01 protocol violations ("query_wait_timeout", "server conn crashed?", "no more
        # connections allowed (max_client_conn)", "pgbouncer cannot connect to server").
        # The next try usually succeeds, so they are 503 + Retry-After, never 500.
        asyncpg.exceptions.ProtocolViolationError: _on_dependency_down,
        # Prepared statements lost across server connections: a pooler in transaction mode
        # with ONECITY_DB_STATEMENT_CACHE_SIZE left on. A misconfiguration, but the request
        # itself may be retried (logged as a warning with the class name).
        asyncpg.exceptions.InvalidSQLStatementNameError: _on_dependency_down,
        asyncpg.exceptions.DuplicatePreparedStatementError: _on_dependency_down,
        asyncpg.exceptions.InvalidCachedStatementError: _on_dependency_down,
        # PostgreSQL shutting down or restarting under a query (57P01 admin shutdown, 57P02
        # crash shutdown, 57P03 cannot connect now), and asyncpg's own protocol-state error
        # when the server drops a connection mid-operation ("cannot switch to state ...").
        asyncpg.exceptions.OperatorInterventionError: _on_dependency_down,
        asyncpg.InternalClientError: _on_dependency_down,
        ConnectionError: _on_dependency_down,
        OSError: _on_dependency_down,
        TimeoutError: _on_dependency_down,
        redis.exceptions.ConnectionError: _on_dependency_down,
        redis.exceptions.TimeoutError: _on_dependency_down,
        # Class 22: UntranslatableCharacterError, DatetimeFieldOverflowError,
        # CharacterNotInRepertoireError, InvalidTextRepresentationError,
        # NumericValueOutOfRangeError, ...
        asyncpg.exceptions.DataError: _on_invalid_value,
        OverflowError: _on_invalid_value,
        redis.exceptions.RedisError: _on_redis_error,
        redis.exceptions.RedisClusterException: _on_redis_error,
        Exception: _on_unexpected,
    }
