"""The demo citizens of DESIGN.md, seeded by ``onecity dev`` at real-name level ``L3``.

Seeding is idempotent: an account that exists (by phone) is left as it is.
"""

from __future__ import annotations

from core.crypto import Vault
from core.db import Pool
from identity.pii import Pii
from identity.repository import IdentityRepository

__all__ = ["DEMO_CITIZENS", "seed_demo_citizens"]

#: (phone, name, ID number) — DESIGN.md "Demo data (fixed)".
DEMO_CITIZENS: tuple[tuple[str, str, str], ...] = (
    ("13800000001", "张三", "110101199003070011"),
    ("13800000002", "李四", "110101198512120019"),
    ("13800000003", "王五", "110101197706150019"),
)


async def seed_demo_citizens(pool: Pool, vault: Vault) -> int:
    """Create the demo accounts that do not exist yet; return how many were created."""
    created = 0
    pii = Pii(vault)
    repository = IdentityRepository(pool)
    async with repository.transaction() as tx:
        for phone, name, id_number in DEMO_CITIZENS:
            stored = pii.account(phone, name, id_number)
            created += await repository.insert_bound_account_if_absent(tx, stored)
    return created
