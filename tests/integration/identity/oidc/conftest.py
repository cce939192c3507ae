"""Fixtures of the OpenID Connect provider tests.

The app's issuer is the test client's base URL (``http://testserver.local``), so discovery,
``iss`` and the endpoints a standard client library reads all agree. Client records are
not cached in-process here (``client_cache_ttl_s=0``), so a test that rotates a secret or
disables a client sees the change at once; the cache has its own test.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest
from httpx import AsyncClient as AsyncTestClient

from bff.settings import Settings, with_derived
from core.crypto import Vault
from core.db import Pool
from identity.oidc import ClientAdmin
from services.departments.sms import SmsGateway
from tests.support.citizens import bearer, login

ISSUER = "http://testserver.local"
HOSPITAL_REDIRECT = "https://hospital.example/callback"
LIBRARY_REDIRECT = "https://library.example/oidc/cb"
METRO_REDIRECT = "com.metro.app:/oauth/cb"


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    """The suite's settings with the test client's base URL as the public URL (issuer)."""
    oidc = msgspec.structs.replace(settings.oidc, client_cache_ttl_s=0)
    return with_derived(msgspec.structs.replace(settings, public_url=ISSUER, oidc=oidc))


@dataclass(frozen=True)
class Partner:
    """A registered client and its secret."""

    client_id: str
    secret: str | None
    redirect_uri: str


@pytest.fixture
def admin(pool: Pool, vault: Vault) -> ClientAdmin:
    return ClientAdmin(pool, vault)


@pytest.fixture
async def hospital(client: AsyncTestClient, admin: ClientAdmin) -> Partner:
    """A confidential partner allowed every citizen scope and code verification."""
    created = await admin.add(
        "hospital",
        name="City Hospital",
        redirect_uris=[HOSPITAL_REDIRECT],
        scopes=["openid", "profile", "phone", "identity.level", "codes:verify"],
    )
    assert created is not None
    return Partner("hospital", created.secret, HOSPITAL_REDIRECT)


@pytest.fixture
async def library(client: AsyncTestClient, admin: ClientAdmin) -> Partner:
    """A second confidential partner (citizen scopes only)."""
    created = await admin.add(
        "library", name="City Library", redirect_uris=[LIBRARY_REDIRECT], scopes=["openid", "profile"]
    )
    assert created is not None
    return Partner("library", created.secret, LIBRARY_REDIRECT)


@pytest.fixture
async def metro(client: AsyncTestClient, admin: ClientAdmin) -> Partner:
    """A public client (the metro's mini-program back end cannot keep a secret)."""
    created = await admin.add(
        "metro-mp", name="Metro", client_type="public", redirect_uris=[METRO_REDIRECT], scopes=["openid"]
    )
    assert created is not None
    return Partner("metro-mp", None, METRO_REDIRECT)


def pkce() -> tuple[str, str]:
    """A fresh (verifier, S256 challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query_of(url: str) -> dict[str, str]:
    """The query parameters of a URL (single values)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def citizen(client: AsyncTestClient, sms: SmsGateway, phone: str = "13900000001") -> str:
    """A citizen's app access token."""
    token: str = (await login(client, sms, phone))["access_token"]
    return token


async def authorize(
    client: AsyncTestClient, token: str, partner: Partner, *, scope: str = "openid profile", **extra: Any
) -> tuple[httpx.Response, str]:
    """``POST /oauth/authorize`` from the app; returns the response and the code verifier."""
    verifier, challenge = pkce()
    body = {
        "client_id": partner.client_id,
        "redirect_uri": partner.redirect_uri,
        "scope": scope,
        "state": "st-" + secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nonce": "n-" + secrets.token_hex(4),
        **extra,
    }
    response = await client.post("/oauth/authorize", json=body, headers=bearer(token))
    return response, verifier


async def code_for(client: AsyncTestClient, token: str, partner: Partner, **kwargs: Any) -> tuple[str, str]:
    """A fresh code and its verifier for ``partner``."""
    response, verifier = await authorize(client, token, partner, **kwargs)
    assert response.status_code == 200, response.text
    return query_of(response.json()["redirect_to"])["code"], verifier


async def exchange(client: AsyncTestClient, partner: Partner, code: str, verifier: str, **extra: str) -> httpx.Response:
    """Redeem a code with client_secret_post."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": partner.redirect_uri,
        "code_verifier": verifier,
        "client_id": partner.client_id,
        **({"client_secret": partner.secret} if partner.secret else {}),
        **extra,
    }
    return await client.post("/oauth/token", data=form)


async def machine_token(client: AsyncTestClient, partner: Partner, scope: str = "codes:verify") -> str:
    """A client_credentials access token (client_secret_basic)."""
    assert partner.secret is not None
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(partner.client_id, partner.secret),
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
