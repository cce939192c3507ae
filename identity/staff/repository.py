"""All SQL of staff accounts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from core.db import Connection, Pool

__all__ = ["StaffRepository"]

Row = asyncpg.Record

_COLUMNS = """id::text AS id, username, display_name, phone_enc, password_hash, roles, region_code,
    disabled_at IS NOT NULL AS disabled, created_at, last_login_at"""


class StaffRepository:
    """Reads and writes the ``staff`` table."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def by_username(self, username: str) -> Row | None:
        """One staff member by username (disabled ones too)."""
        return await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM staff WHERE username = $1", username)  # noqa: S608

    async def by_id(self, staff_id: str) -> Row | None:
        """One staff member by id (``None`` for anything that is not one, e.g. not a UUID)."""
        try:
            uuid.UUID(staff_id)
        except ValueError:
            return None
        return await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM staff WHERE id = $1::uuid", staff_id)  # noqa: S608

    async def list(self) -> list[Row]:
        """Everyone, by username."""
        return await self.pool.fetch(f"SELECT {_COLUMNS} FROM staff ORDER BY username")  # noqa: S608

    @staticmethod
    async def insert(
        conn: Connection,
        *,
        username: str,
        display_name: str,
        phone_enc: bytes,
        password_hash: str,
        roles: Sequence[str],
        region_code: str,
    ) -> str:
        """A new staff member; returns the id.

        Raises:
            asyncpg.UniqueViolationError: the username is taken.
        """
        staff_id: str = await conn.fetchval(
            """INSERT INTO staff (username, display_name, phone_enc, password_hash, roles, region_code)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id::text""",
            username,
            display_name,
            phone_enc,
            password_hash,
            list(roles),
            region_code,
        )
        return staff_id

    @staticmethod
    async def disable(conn: Connection, username: str) -> str | None:
        """Disable an enabled staff member; their id, or ``None``."""
        staff_id: str | None = await conn.fetchval(
            "UPDATE staff SET disabled_at = now() WHERE username = $1 AND disabled_at IS NULL RETURNING id::text",
            username,
        )
        return staff_id

    async def set_password_hash(self, staff_id: str, password_hash: str) -> None:
        """Replace the hash (re-hashing with stronger parameters on login)."""
        await self.pool.execute("UPDATE staff SET password_hash = $2 WHERE id = $1::uuid", staff_id, password_hash)

    @staticmethod
    async def touch_login(conn: Connection, staff_id: str) -> None:
        """Record a successful sign-in."""
        await conn.execute("UPDATE staff SET last_login_at = now() WHERE id = $1::uuid", staff_id)
