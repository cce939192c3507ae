"""Partners calling OneCity's APIs with ``client_credentials`` access tokens.

A partner (a metro gate operator, a hospital) holds a token issued to its ``client_id``
for the audience :data:`~identity.tokens.API_AUDIENCE`; endpoints ask for a scope with
:func:`require_partner_scope`. The single sign-on domain issues these tokens and may add
revocation checks here.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from litestar import Request
from litestar.datastructures import State

from core.errors import Forbidden, Unauthorized
from core.structs import Response
from identity.dependencies import bearer_token
from identity.tokens import API_AUDIENCE, AccessTokens

if TYPE_CHECKING:
    from identity.oidc.revocation import TokenRevocations

__all__ = ["PartnerPrincipal", "authenticate_partner", "require_partner_scope"]


class PartnerPrincipal(Response, frozen=True):
    """The partner behind a request: its client id and granted scopes."""

    client_id: str
    scopes: frozenset[str]
    jti: str


async def authenticate_partner(
    tokens: AccessTokens, token: str, revocations: TokenRevocations | None = None
) -> PartnerPrincipal:
    """Verify a partner access token (audience ``onecity-api``), or 401.

    With ``revocations``, a token revoked by its client (RFC 7009) or issued to a client
    disabled since is refused too (one Redis round trip).
    """
    claims = await tokens.verify(token, audience=API_AUDIENCE)
    if claims.sid is not None:
        # A citizen's delegated token is not a partner's machine credential.
        raise Unauthorized("A client_credentials token is required", error="invalid_token")
    if revocations is not None and await revocations.is_revoked(jti=claims.jti, client_id=claims.client_id):
        raise Unauthorized("The access token has been revoked", error="invalid_token")
    return PartnerPrincipal(client_id=claims.client_id, scopes=claims.scopes, jti=claims.jti)


def require_partner_scope(scope: str) -> Callable[..., Coroutine[Any, Any, PartnerPrincipal]]:
    """A dependency provider: the partner, who must hold ``scope`` (else 403 insufficient_scope)."""

    async def provide(request: Request[Any, Any, Any], state: State) -> PartnerPrincipal:
        partner = await authenticate_partner(state.access_tokens, bearer_token(request), state.get("token_revocations"))
        if scope not in partner.scopes:
            raise Forbidden(
                f"This needs the scope {scope}",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        return partner

    return provide
