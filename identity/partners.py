"""Partners calling OneCity's APIs with ``client_credentials`` access tokens.

A partner (a metro gate operator, a hospital) holds a token issued to its ``client_id``
for the audience :data:`~identity.tokens.API_AUDIENCE`; endpoints ask for a scope with
:func:`require_partner_scope`. The single sign-on domain issues these tokens; a token
revoked (RFC 7009) or issued to a client disabled since is refused through the revocation set.

A partner may hold a DPoP-bound token (RFC 9449: ``cnf.jkt``, presented as
``Authorization: DPoP <token>`` with a ``DPoP`` proof header). The token check (cacheable per
token) and the proof check (new for every request) are separate: :func:`check_partner_dpop`
runs on every request, after whatever cache sits in front of :func:`authenticate_partner`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from litestar import Request
from litestar.datastructures import State

from core.errors import Forbidden, Unauthorized
from core.structs import FrozenStruct
from identity.dependencies import presented_token
from identity.oidc.dpop import PresentationError
from identity.revocation import ACCESS_TOKENS, CLIENTS, RevocationSet, revocations_of
from identity.tokens import API_AUDIENCE, AccessTokens

__all__ = ["PartnerPrincipal", "authenticate_partner", "check_partner_dpop", "require_partner_scope"]


class PartnerPrincipal(FrozenStruct, frozen=True):
    """The partner behind a request: its client id and granted scopes."""

    client_id: str
    scopes: frozenset[str]
    jti: str
    jkt: str | None = None  # the DPoP key the token is bound to (every request needs its proof)


async def authenticate_partner(tokens: AccessTokens, token: str, revocations: RevocationSet) -> PartnerPrincipal:
    """Verify a partner access token (audience ``onecity-api``), or 401.

    A token revoked by its client (RFC 7009) or issued to a client disabled since is refused
    too (one Redis round trip).
    """
    claims = await tokens.verify(token, audience=API_AUDIENCE)
    if claims.sid is not None:
        # A citizen's delegated token is not a partner's machine credential.
        raise Unauthorized("A client_credentials token is required", error="invalid_token")
    if await revocations.is_revoked((ACCESS_TOKENS, claims.jti), (CLIENTS, claims.client_id)):
        raise Unauthorized("The access token has been revoked", error="invalid_token")
    return PartnerPrincipal(client_id=claims.client_id, scopes=claims.scopes, jti=claims.jti, jkt=claims.jkt)


async def check_partner_dpop(request: Request[Any, Any, Any], state: State, partner: PartnerPrincipal) -> None:
    """Check that this request presents the partner's token as its binding requires, or 401.

    A DPoP-bound token needs the ``DPoP`` scheme and a fresh proof by its key over this
    request; an unbound one the ``Bearer`` scheme. The 401 carries a ``DPoP`` challenge with
    ``invalid_token`` or ``invalid_dpop_proof`` and a ``DPoP-Nonce``.
    """
    scheme, token = presented_token(request)
    if partner.jkt is None and scheme == "bearer":
        return  # the common case costs nothing
    oidc = state.oidc
    try:
        await oidc.dpop.check_presentation(
            scheme=scheme,
            token=token,
            jkt=partner.jkt,
            proofs=request.headers.getall("dpop", []),
            method=request.method,
            url=f"{oidc.issuer}{request.url.path}",
        )
    except PresentationError as exc:
        raise Unauthorized(
            exc.description, error=exc.error, headers=exc.headers, extensions={"error": exc.error}
        ) from None


def require_partner_scope(
    scope: str, *, check_dpop: bool = True
) -> Callable[..., Coroutine[Any, Any, PartnerPrincipal]]:
    """A dependency provider: the partner, who must hold ``scope`` (else 403 insufficient_scope).

    ``check_dpop=False`` leaves the per-request proof to the caller (a token cache in front).
    """

    async def provide(request: Request[Any, Any, Any], state: State) -> PartnerPrincipal:
        _, token = presented_token(request)
        partner = await authenticate_partner(state.access_tokens, token, revocations_of(state))
        if scope not in partner.scopes:
            raise Forbidden(
                f"This needs the scope {scope}",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        if check_dpop:
            await check_partner_dpop(request, state, partner)
        return partner

    return provide
