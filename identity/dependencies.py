"""Litestar dependency providers of the identity domain: the service and the principal."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from core.errors import Unauthorized
from core.proxies import ClientAddresses
from identity.principal import Principal
from identity.service import IdentityService

__all__ = [
    "bearer_token",
    "client_ip",
    "presented_token",
    "provide_confirmed_principal",
    "provide_identity",
    "provide_principal",
]


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


def presented_token(request: Request[Any, Any, Any]) -> tuple[str, str]:
    """The access token of the ``Authorization`` header and its scheme (``bearer`` or ``dpop``).

    Partner tokens may be DPoP-bound (RFC 9449), presented as ``Authorization: DPoP <token>``;
    whether the scheme fits the token is the caller's check. Anything else is a 401.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "dpop") or not token.strip():
        raise Unauthorized(
            "An access token is required",
            headers={"WWW-Authenticate": 'Bearer realm="onecity", DPoP algs="EdDSA Ed25519 ES256"'},
        )
    return scheme, token.strip()


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
    """The client's address: the one function every limit and audit record reads it through.

    The TCP peer, unless the peer is one of ``ONECITY_TRUSTED_PROXIES``: then the right-most
    address in ``X-Forwarded-For`` (or ``Forwarded``) that is not a trusted proxy
    (:class:`core.proxies.ClientAddresses`). A header sent by a client straight to us is
    ignored. The app puts the resolver in its state; without one, the peer is the client.
    """
    peer = request.client.host if request.client else None
    resolver: ClientAddresses | None = request.app.state.get("client_addresses")
    if resolver is None:
        return peer
    headers = request.headers
    forwarded_for = ",".join(headers.getall("x-forwarded-for", [])) or None
    forwarded = ",".join(headers.getall("forwarded", [])) or None
    return resolver.resolve(peer, forwarded_for, forwarded)
