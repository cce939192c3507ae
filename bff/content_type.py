"""The content-type middleware: every route refuses a body of a media type it does not take.

Litestar would happily decode a JSON body sent as ``text/plain``; a client doing that has a
bug it should hear about (and a browser form posted cross-site at a JSON endpoint is a CSRF
vector), so a body whose type the route does not accept gets 415 problem JSON. A route
that takes forms declares it with ``opt={"content_types": ("application/x-www-form-urlencoded",)}``.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from bff.problems import send_problem

__all__ = ["JSON_ONLY", "ContentTypeMiddleware"]

JSON_ONLY: tuple[str, ...] = ("application/json",)
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


def _media_type(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


class ContentTypeMiddleware:
    """Answer 415 when a request body's media type is not one the route accepts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] in _BODY_METHODS and _has_body(scope):
            handler = scope.get("route_handler")
            accepted = (handler.opt.get("content_types") if handler is not None else None) or JSON_ONLY
            media_type = _media_type(scope)
            if media_type not in accepted and not (media_type.endswith("+json") and "application/json" in accepted):
                await send_problem(
                    scope,
                    send,
                    status=415,
                    slug="unsupported-media-type",
                    title="Unsupported media type",
                    detail=f"Send the body as {' or '.join(accepted)}",
                )
                return
        await self.app(scope, receive, send)
