"""Fixtures of the codes integration tests: the app with its state, demo citizens, staff and
partner tokens minted by the real issuer, a code signer from the test key store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar

from bff.app import create_app
from bff.settings import Settings
from codes import render
from codes.payload import build_claims, issue_code
from codes.verifier import load_jwks
from core.crypto import Vault
from core.db import Pool
from core.keys import KeyManager, KeyStore
from core.redis import Redis
from core.signing import Ed25519Signer
from identity.seed import seed_demo_citizens
from identity.tokens import API_AUDIENCE, AccessTokens
from services.departments.sms import SmsGateway
from services.simulators import RunningServer, valid_id_number
from tests.support.asgi import running_app
from tests.support.citizens import bearer, login

ZHANG_SAN = "13800000001"
LI_SI = "13800000002"
WANG_WU = "13800000003"
DEMO_REGION = "110101"


@dataclass
class App:
    """The app under test, its client and its state."""

    app: Litestar
    client: httpx.AsyncClient

    @property
    def state(self) -> Any:
        return self.app.state


@pytest.fixture
async def app(settings: Settings, clean: None) -> AsyncIterator[App]:
    """The BFF in-process with empty tables and Redis, exposing its state."""
    render.clear_cache()
    application = create_app(settings)
    async with running_app(application) as client:
        yield App(application, client)


@pytest.fixture(scope="session")
async def tokens(key_store: KeyStore, settings: Settings) -> AccessTokens:
    """The real access token issuer, over the test key store."""
    return AccessTokens(await KeyManager.open(key_store), settings.identity)


@pytest.fixture(scope="session")
async def code_signer(key_store: KeyStore) -> Ed25519Signer:
    """The active code-signing key the app signs with."""
    return (await key_store.load()).signer("code")


PartnerHeaders = Callable[..., dict[str, str]]
StaffHeaders = Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def partner(tokens: AccessTokens) -> PartnerHeaders:
    """Headers of a partner's ``client_credentials`` token."""

    def make(client_id: str = "metro-gates", scope: str = "codes:verify") -> dict[str, str]:
        token, _ = tokens.issue(subject=client_id, client_id=client_id, audience=API_AUDIENCE, scope=scope)
        return bearer(token)

    return make


@pytest.fixture(scope="session")
def staff(tokens: AccessTokens) -> StaffHeaders:
    """Headers of a staff access token with ``roles`` and ``region``."""

    def make(
        roles: tuple[str, ...] = ("health_officer",), region: str = DEMO_REGION, staff_id: str = "officer-1"
    ) -> dict[str, str]:
        token, _ = tokens.issue(
            subject=staff_id,
            client_id="onecity-staff",
            audience="onecity-staff",
            extra={"roles": list(roles), "region": region},
        )
        return bearer(token)

    return make


Demo = dict[str, dict[str, str]]


@pytest.fixture
async def demo(app: App, pool: Pool, vault: Vault, sms: SmsGateway) -> Demo:
    """The three demo citizens (L3), logged in: phone → Authorization header."""
    await seed_demo_citizens(pool, vault)
    return {
        phone: bearer((await login(app.client, sms, phone))["access_token"]) for phone in (ZHANG_SAN, LI_SI, WANG_WU)
    }


async def account_id_of(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """The signed-in citizen's account id."""
    response = await client.get("/v1/me", headers=headers)
    assert response.status_code == 200, response.text
    account: str = response.json()["id"]
    return account


async def code_keys(client: httpx.AsyncClient) -> dict[str, Any]:
    """The published code JWKS, loaded for :func:`codes.verifier.verify_code`."""
    response = await client.get("/v1/codes/keys")
    assert response.status_code == 200
    return load_jwks(response.json())


async def issue(client: httpx.AsyncClient, headers: dict[str, str], code_type: str = "health") -> dict[str, Any]:
    """``POST /v1/me/codes/{type}`` that must succeed."""
    response = await client.post(f"/v1/me/codes/{code_type}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


Verify = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def verify(app: App, partner: PartnerHeaders) -> Verify:
    """``POST /v1/codes/verify`` as the default partner; returns the JSON body (200 required)."""

    async def run(payload: str, **fields: Any) -> dict[str, Any]:
        response = await app.client.post("/v1/codes/verify", json={"payload": payload, **fields}, headers=partner())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return run


def mint(signer: Ed25519Signer, code_type: str = "health", **claims: Any) -> str:
    """A code signed with the app's code key, with any claims (for time and shape cases)."""
    defaults: dict[str, Any] = {
        "issuer": "cs",
        "subject": "AAAAAAAAAAA",
        "status": "G" if code_type == "health" else "A",
    }
    defaults.update(claims)
    return issue_code(signer, build_claims(code_type, **defaults))


def find_id_number(predicate: Callable[[str], bool], *, start: int = 0) -> str:
    """A valid ID number of district 110101 for which ``predicate`` holds (searching
    deterministic simulator data)."""
    for serial in range(start, start + 20_000):
        body = f"11010119800101{serial % 1000:03d}"
        for check in "0123456789X":
            candidate = body + check
            if valid_id_number(candidate) and predicate(candidate):
                return candidate
    raise AssertionError("no such ID number")


@pytest.fixture
async def faults(simulators: dict[str, RunningServer], redis: Redis) -> AsyncIterator[Callable[[str], Awaitable[None]]]:
    """Make a department simulator fail every call (503); cleared after the test.

    The fan-out layer's cache of that department is emptied too: the department has been
    down for longer than the cache keeps answers, which is the case the codes fallback is for.
    """
    touched: list[str] = []

    async def fail(name: str) -> None:
        touched.append(name)
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{simulators[name].base_url}/_sim/faults", json={"error_rate": 1.0})
            assert response.status_code < 300, response.text
        cached = [key async for key in redis.scan_iter(f"oc:fan:{name}:*")]
        if cached:
            await redis.delete(*cached)

    yield fail
    async with httpx.AsyncClient() as http:
        for name in touched:
            await http.delete(f"{simulators[name].base_url}/_sim/faults")
