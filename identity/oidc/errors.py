"""OAuth 2.0 errors (RFC 6749 section 5.2, RFC 6750 section 3) and where they become responses.

The token, introspection, revocation and userinfo endpoints speak OAuth, not problem JSON: a
standard client library reads ``{"error", "error_description"}``. Domain code raises
:class:`OAuthError`; :func:`oauth_exception_handlers` (installed on the OAuth controllers
only) renders it, and renders a body that failed schema validation as ``invalid_request``.
Descriptions are fixed strings chosen here: never a token, a secret or a client's input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request, Response
from litestar.exceptions import ValidationException
from litestar.types import ExceptionHandlersMap

from core.errors import Conflict, OneCityError

__all__ = [
    "NO_STORE",
    "ClientExists",
    "OAuthError",
    "access_denied",
    "insufficient_scope",
    "invalid_client",
    "invalid_grant",
    "invalid_request",
    "invalid_scope",
    "invalid_token",
    "oauth_exception_handlers",
    "unauthorized_client",
    "unsupported_grant_type",
]

#: Token responses and errors must never be cached (RFC 6749 section 5.1).
NO_STORE: Mapping[str, str] = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An OAuth error response.

    Args:
        error: The RFC 6749 / 6750 / OIDC error code, e.g. ``invalid_grant``.
        description: Human-readable, fixed text: no secrets, no echoed input.
        status: 400 for most errors, 401 for client or token authentication, 403 for scope.
        headers: Extra headers (``WWW-Authenticate``).
    """

    def __init__(
        self, error: str, description: str, *, status: int = 400, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, str]:
        """The JSON body."""
        return {"error": self.error, "error_description": self.description}


class ClientExists(Conflict):
    """A client with this id is registered already."""


def invalid_request(description: str = "The request is missing a parameter or is malformed") -> OAuthError:
    """``invalid_request`` (400)."""
    return OAuthError("invalid_request", description)


def invalid_client(description: str = "Client authentication failed") -> OAuthError:
    """``invalid_client`` (401, with a ``Basic`` challenge as RFC 6749 section 5.2 asks)."""
    return OAuthError("invalid_client", description, status=401, headers={"WWW-Authenticate": 'Basic realm="onecity"'})


def invalid_grant(
    description: str = "The grant is invalid, expired, used or was issued to another client",
) -> OAuthError:
    """``invalid_grant`` (400)."""
    return OAuthError("invalid_grant", description)


def unauthorized_client(description: str = "This client may not use this grant type") -> OAuthError:
    """``unauthorized_client`` (400)."""
    return OAuthError("unauthorized_client", description)


def unsupported_grant_type(description: str = "The grant type is not supported") -> OAuthError:
    """``unsupported_grant_type`` (400)."""
    return OAuthError("unsupported_grant_type", description)


def invalid_scope(
    description: str = "The requested scope is invalid or exceeds what the client may ask for",
) -> OAuthError:
    """``invalid_scope`` (400)."""
    return OAuthError("invalid_scope", description)


def access_denied(description: str = "The citizen did not allow this") -> OAuthError:
    """``access_denied`` (authorization responses only)."""
    return OAuthError("access_denied", description, status=403)


def invalid_token(description: str = "The access token is invalid, expired or revoked") -> OAuthError:
    """``invalid_token`` (401, RFC 6750 ``Bearer`` challenge)."""
    return OAuthError(
        "invalid_token",
        description,
        status=401,
        headers={
            "WWW-Authenticate": f'Bearer realm="onecity", error="invalid_token", error_description="{description}"'
        },
    )


def insufficient_scope(scope: str) -> OAuthError:
    """``insufficient_scope`` (403, RFC 6750)."""
    return OAuthError(
        "insufficient_scope",
        f"This needs the scope {scope}",
        status=403,
        headers={"WWW-Authenticate": f'Bearer realm="onecity", error="insufficient_scope", scope="{scope}"'},
    )


def _render(error: OAuthError) -> Response[dict[str, str]]:
    return Response(error.body(), status_code=error.status, headers={**NO_STORE, **error.headers})


def _on_oauth_error(request: Request[Any, Any, Any], exc: OAuthError) -> Response[dict[str, str]]:
    return _render(exc)


def _on_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, str]]:
    fields = sorted(
        {str(item.get("key")) for item in (exc.extra if isinstance(exc.extra, list) else []) if isinstance(item, dict)}
        - {"", "None", "data"}
    )
    detail = (
        "Invalid parameter: " + ", ".join(fields) if fields else "The request is missing a parameter or is malformed"
    )
    return _render(invalid_request(detail))


def _on_domain_error(request: Request[Any, Any, Any], exc: OneCityError) -> Response[dict[str, str]]:
    # A missing or bad bearer token on userinfo: RFC 6750 wants the Bearer challenge and code.
    if exc.status == 401:
        return _render(invalid_token())
    return Response(
        {
            "error": "temporarily_unavailable" if exc.status >= 500 else "invalid_request",
            "error_description": exc.detail,
        },
        status_code=exc.status,
        headers={**NO_STORE, **exc.headers},
    )


def oauth_exception_handlers() -> ExceptionHandlersMap:
    """Handlers for the OAuth endpoints' controllers (they override the app's problem JSON)."""
    return {
        OAuthError: _on_oauth_error,
        ValidationException: _on_validation_error,
        OneCityError: _on_domain_error,
    }
