"""Litestar dependency providers of the OpenID Connect provider.

Each controller asks for the one service its handlers call, under the name given in
:data:`OIDC_DEPENDENCIES`; this module is the only code that knows where the process keeps
them (``state.oidc``, built in the app's lifespan by ``bff.domains``).
"""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide

from identity.oidc.browser import BrowserFlow
from identity.oidc.consent import Consents
from identity.oidc.grants import TokenEndpoint
from identity.oidc.par import PushedRequests
from identity.oidc.service import OidcProvider

__all__ = [
    "OIDC_DEPENDENCIES",
    "provide_browser_flow",
    "provide_consents",
    "provide_oidc",
    "provide_pushed_requests",
    "provide_token_endpoint",
]


def provide_oidc(state: State) -> OidcProvider:
    """The process's OIDC provider: discovery and the app's authorization requests."""
    provider: OidcProvider = state.oidc
    return provider


def provide_token_endpoint(state: State) -> TokenEndpoint:
    """Token, introspection, revocation and userinfo (``/oauth/token`` and its siblings)."""
    return provide_oidc(state).endpoint


def provide_pushed_requests(state: State) -> PushedRequests:
    """Pushed authorization requests (``/oauth/par``, RFC 9126)."""
    return provide_oidc(state).par


def provide_browser_flow(state: State) -> BrowserFlow:
    """The browser's login and consent pages (``GET /oauth/authorize`` and its forms)."""
    return provide_oidc(state).browser


def provide_consents(state: State) -> Consents:
    """The citizen's consents (``/v1/me/consents``)."""
    return provide_oidc(state).consents


#: Every provider above under the parameter name handlers use (resolved only when asked for).
OIDC_DEPENDENCIES = {
    "oidc": Provide(provide_oidc, sync_to_thread=False),
    "token_endpoint": Provide(provide_token_endpoint, sync_to_thread=False),
    "pushed_requests": Provide(provide_pushed_requests, sync_to_thread=False),
    "browser_flow": Provide(provide_browser_flow, sync_to_thread=False),
    "consents": Provide(provide_consents, sync_to_thread=False),
}
