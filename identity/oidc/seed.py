"""The demo partner of DESIGN.md, seeded by ``onecity dev`` (idempotent)."""

from __future__ import annotations

from core.crypto import Vault
from core.db import Pool
from identity.oidc.admin import ClientAdmin

__all__ = ["DEMO_CLIENT_ID", "DEMO_REDIRECT_URI", "DEMO_SCOPES", "DEMO_SECRET", "seed_demo_partner"]

# DESIGN.md "Demo data (fixed)".
DEMO_CLIENT_ID = "demo-partner"
DEMO_SECRET = "demo-partner-secret"  # noqa: S105 - the fixed, published demo secret
DEMO_REDIRECT_URI = "http://127.0.0.1:9000/callback"
DEMO_SCOPES = ("openid", "profile", "codes:verify")


async def seed_demo_partner(pool: Pool, vault: Vault) -> bool:
    """Register the demo partner unless it exists; whether it was created now.

    Its secret is the published demo value, not a generated one: this client exists for
    trying OneCity out and is seeded by ``onecity dev`` only, never in production.
    """
    created = await ClientAdmin(pool, vault).add(
        DEMO_CLIENT_ID,
        name="Demo Partner",
        client_type="confidential",
        auth_method="client_secret_basic",
        redirect_uris=[DEMO_REDIRECT_URI],
        scopes=DEMO_SCOPES,
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        secret=DEMO_SECRET,
        if_absent=True,
    )
    return created is not None
