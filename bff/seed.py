"""Demo data for ``onecity dev``: each domain seeds its own part, idempotently."""

from __future__ import annotations

from bff.settings import Settings
from codes.seed import seed_demo_venue
from core.crypto import Vault
from core.db import create_pool
from hall import seed_department_clients
from identity.oidc import seed_demo_partner
from identity.seed import seed_demo_citizens

__all__ = ["seed_demo"]


async def seed_demo(settings: Settings) -> None:
    """Seed the demo citizens, the demo partner (DESIGN.md "Demo data"), the demo venue and the
    departments' event clients (``dept-<name>``); safe to repeat."""
    assert settings.database.url
    pool = await create_pool(settings.database.url, min_size=1, max_size=2)
    try:
        vault = Vault(settings.require_master_key())
        await seed_demo_citizens(pool, vault)
        await seed_demo_partner(pool, vault)
        await seed_demo_venue(pool, vault, issuer=settings.city)
        await seed_department_clients(pool, vault)
    finally:
        await pool.close()
