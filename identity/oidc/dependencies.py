"""Litestar dependency providers of the OpenID Connect provider."""

from __future__ import annotations

from litestar.datastructures import State

from identity.oidc.service import OidcProvider

__all__ = ["provide_oidc"]


def provide_oidc(state: State) -> OidcProvider:
    """The process's OIDC provider (built in the app's lifespan)."""
    provider: OidcProvider = state.oidc
    return provider
