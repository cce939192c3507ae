"""Fixtures of the data-access ledger tests: the codes suite's app, demo citizens, staff tokens
(re-used, not copied), and a registered partner with a display name."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.crypto import Vault
from core.db import Pool
from identity.oidc import ClientAdmin
from tests.integration.codes.conftest import App, app, demo, staff, tokens

__all__ = ["App", "Partner", "app", "demo", "hospital", "library", "staff", "tokens"]

HOSPITAL_REDIRECT = "https://hospital.example/callback"


@dataclass(frozen=True)
class Partner:
    """A registered client: id, secret, redirect URI, display name."""

    client_id: str
    secret: str
    redirect_uri: str
    name: str


async def _partner(pool: Pool, vault: Vault, client_id: str, name: str, scopes: list[str]) -> Partner:
    created = await ClientAdmin(pool, vault).add(client_id, name=name, redirect_uris=[HOSPITAL_REDIRECT], scopes=scopes)
    assert created is not None and created.secret is not None
    return Partner(client_id, created.secret, HOSPITAL_REDIRECT, name)


@pytest.fixture
async def hospital(app: App, pool: Pool, vault: Vault) -> Partner:
    """A confidential partner: sign-in with every citizen scope, and code verification."""
    return await _partner(
        pool, vault, "hospital", "City Hospital", ["openid", "profile", "phone", "identity.level", "codes:verify"]
    )


@pytest.fixture
async def library(app: App, pool: Pool, vault: Vault) -> Partner:
    """A second partner that verifies codes."""
    return await _partner(pool, vault, "library", "City Library", ["codes:verify"])
