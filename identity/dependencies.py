"""Litestar dependency providers of the identity domain: the service and the principal."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from core.errors import Unauthorized
from identity.service import IdentityService, Principal

__all__ = ["bearer_token", "client_ip", "provide_confirmed_principal", "provide_identity", "provide_principal"]


def provide_identity(state: State) -> IdentityService:
    """The process's identity service (built in the app's lifespan)."""
    service: IdentityService = state.identity
    return service


def bearer_token(request: Request[Any, Any, Any]) -> str:
    """The bearer token of the ``Authorization`` header, or 401 asking for one (RFC 6750)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "A bearer access token is required",
            headers={"WWW-Authenticate": 'Bearer realm="onecity"'},
        )
    return token.strip()


async def provide_principal(request: Request[Any, Any, Any], identity: NamedDependency[IdentityService]) -> Principal:
    """The authenticated citizen: a verified access token whose session has not ended."""
    return await identity.authenticate(bearer_token(request))


async def provide_confirmed_principal(
    request: Request[Any, Any, Any], identity: NamedDependency[IdentityService]
) -> Principal:
    """The authenticated citizen, refused (403 ``identity-reverification-required``) while
    the session must prove the bound identity again (a possibly recycled phone number).

    The one guard for routes that show codes or department data: a controller uses it by
    providing it as its ``principal`` dependency.
    """
    principal = await identity.authenticate(bearer_token(request))
    principal.require_confirmed()
    return principal


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    """The peer address as the server saw it (a proxy in front must be trusted to set it)."""
    return request.client.host if request.client else None
