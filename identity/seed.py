"""The demo citizens of DESIGN.md, seeded by ``onecity dev`` at real-name level ``L3``.

Seeding is idempotent: an account that exists (by phone) is left as it is.
"""

from __future__ import annotations

from core.crypto import Vault
from core.db import Pool
from identity.pii import Pii

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
    async with pool.acquire() as conn, conn.transaction():
        for phone, name, id_number in DEMO_CITIZENS:
            stored = pii.account(phone, name, id_number)
            inserted = await conn.fetchval(
                """INSERT INTO accounts (phone_enc, phone_index, level, name_enc, id_number_enc, id_number_index,
                                         region_code)
                   VALUES ($1, $2, 'L3', $3, $4, $5, $6)
                   ON CONFLICT DO NOTHING RETURNING true""",
                stored.phone_enc,
                stored.phone_index,
                stored.name_enc,
                stored.id_number_enc,
                stored.id_number_index,
                stored.region_code,
            )
            created += bool(inserted)
    return created
