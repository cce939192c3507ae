"""A partner's relying party built from Authlib alone: what a partner would write.

Authlib's framework integrations (Flask, Django, Starlette) all share the same core: an
OAuth 2.0 app with OpenID Connect support over an httpx ``AsyncOAuth2Client``. This is
that core without a web framework, pointed at the app under test through its ASGI
transport. Nothing here knows anything about OneCity beyond the discovery URL.
"""

from __future__ import annotations

from typing import Any

import httpx
from authlib.integrations.base_client import BaseApp
from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin
from authlib.integrations.httpx_client import AsyncOAuth2Client

__all__ = ["RelyingParty", "relying_party"]

DISCOVERY = "http://testserver.local/.well-known/openid-configuration"


class RelyingParty(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):  # type: ignore[misc]
    """Authlib's async OpenID Connect client app."""

    client_cls = AsyncOAuth2Client


def relying_party(
    transport: httpx.AsyncBaseTransport,
    client_id: str,
    client_secret: Any,
    *,
    scope: str = "openid profile",
    auth_method: str = "client_secret_basic",
    **client_kwargs: Any,
) -> RelyingParty:
    """An Authlib OIDC client for ``client_id`` using discovery, PKCE S256 and ``auth_method``."""
    return RelyingParty(
        None,
        name="onecity",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=DISCOVERY,
        client_kwargs={
            "transport": transport,
            "scope": scope,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": auth_method,
            **client_kwargs,
        },
    )
