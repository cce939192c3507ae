"""The demo venue of ``onecity dev``: one registered venue with a printable venue code."""

from __future__ import annotations

from codes.repository import CodesRepository
from codes.schemas import VenueCreate
from codes.venues import register_venue
from core.crypto import Vault
from core.db import Pool
from core.keys import KeyStore

__all__ = ["DEMO_VENUE", "DEMO_VENUE_ID", "seed_demo_venue"]

#: A fixed id, so the demo poster (``GET /v1/admin/venues/DemoVenue01/poster``) is stable.
DEMO_VENUE_ID = "DemoVenue01"
DEMO_VENUE = VenueCreate(name="市民服务中心", address="东城区示范路1号", region="110101")


async def seed_demo_venue(pool: Pool, vault: Vault, *, issuer: str) -> bool:
    """Register the demo venue unless it exists; returns whether it was created.

    Needs the code-signing key (run after the keys are created, as ``onecity dev`` does).
    """
    repository = CodesRepository(pool)
    if await repository.get_venue(DEMO_VENUE_ID) is not None:
        return False
    ring = await KeyStore(pool, vault).load()
    await register_venue(
        repository,
        ring.signer("code"),
        issuer=issuer,
        request=DEMO_VENUE,
        owner_type="system",
        owner_id="seed",
        venue_id=DEMO_VENUE_ID,
    )
    return True
