"""All SQL of staff accounts."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from core.db import Connection, Pool

__all__ = ["StaffRepository"]

Row = asyncpg.Record

_UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

# The region of an audit row is its subject's: a citizen's registered district or a staff
# member's region. CASE (not AND) guards the cast: the planner may evaluate AND operands in
# any order, and most subject ids are not UUIDs.
_AUDIT_PAGE = f"""
SELECT a.id, a.at, a.actor_type, a.actor_id, a.subject_id, a.action, a.outcome, a.client_ip, a.details
FROM audit_log a
LEFT JOIN accounts c ON c.id = CASE WHEN a.subject_id ~ '{_UUID}' THEN a.subject_id::uuid END
LEFT JOIN staff s ON s.id = CASE WHEN a.subject_id ~ '{_UUID}' THEN a.subject_id::uuid END
WHERE ($1::bigint IS NULL OR a.id < $1)
  AND ($2::text IS NULL OR a.action = $2)
  AND ($3::text IS NULL OR a.action LIKE $3)
  AND ($4::timestamptz IS NULL OR a.at >= $4)
  AND CASE
      WHEN coalesce(c.region_code, s.region_code) IS NULL THEN $6::bool
      ELSE left(coalesce(c.region_code, s.region_code), length($5)) = $5
  END
ORDER BY a.id DESC
LIMIT $7
"""  # noqa: S608 - constants only

_COLUMNS = """id::text AS id, username, display_name, phone_enc, password_hash, roles, region_code,
    disabled_at IS NOT NULL AS disabled, created_at, last_login_at,
    webauthn_blocked_at IS NOT NULL AS webauthn_blocked"""


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
    async def set_roles(conn: Connection, staff_id: str, roles: Sequence[str]) -> builtins.list[str]:
        """Replace the roles (row locked for the transaction); returns the previous ones.

        Raises:
            asyncpg.CheckViolationError: the roles break separation of duties.
        """
        old: list[str] = await conn.fetchval("SELECT roles FROM staff WHERE id = $1::uuid FOR UPDATE", staff_id)
        await conn.execute(
            "UPDATE staff SET roles = $2, tokens_not_before = now() WHERE id = $1::uuid", staff_id, list(roles)
        )
        return list(old)

    async def tokens_not_before(self, staff_id: str) -> float | None:
        """Unix time before which the member's tokens are refused (a role change or a
        recovery), or ``None``."""
        try:
            uuid.UUID(staff_id)
        except ValueError:
            return None
        value: float | None = await self.pool.fetchval(
            "SELECT extract(epoch FROM tokens_not_before)::float8 FROM staff WHERE id = $1::uuid", staff_id
        )
        return value

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

    async def audit_page(
        self,
        *,
        region: str,
        sees_unregioned: bool,
        before_id: int | None,
        action: str | None,
        action_prefix: str | None,
        since: datetime | None,
        limit: int,
    ) -> builtins.list[Row]:
        """Audit rows newest first, below ``before_id``, whose subject lies in ``region``
        (rows whose subject has no region only when ``sees_unregioned``)."""
        like = None if action_prefix is None else action_prefix.replace("_", r"\_") + "%"
        return await self.pool.fetch(_AUDIT_PAGE, before_id, action, like, since, region, sees_unregioned, limit)

    # WebAuthn authenticators -------------------------------------------------------------

    async def active_authenticators(self, staff_id: str) -> builtins.list[Row]:
        """The member's authenticators that may sign in, oldest first."""
        return await self.pool.fetch(
            """SELECT id::text AS id, credential_id, public_key, sign_count, transports, name, created_at,
                      last_used_at
               FROM staff_authenticators WHERE staff_id = $1::uuid AND revoked_at IS NULL ORDER BY created_at""",
            staff_id,
        )

    async def has_authenticator(self, staff_id: str) -> bool:
        """Whether the member has an authenticator that may sign in."""
        found: bool = await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM staff_authenticators WHERE staff_id = $1::uuid AND revoked_at IS NULL)",
            staff_id,
        )
        return found

    async def authenticator(self, staff_id: str, credential_id: bytes) -> Row | None:
        """The member's active authenticator with this credential id."""
        return await self.pool.fetchrow(
            """SELECT id::text AS id, public_key, sign_count FROM staff_authenticators
               WHERE staff_id = $1::uuid AND credential_id = $2 AND revoked_at IS NULL""",
            staff_id,
            credential_id,
        )

    @staticmethod
    async def insert_authenticator(
        conn: Connection,
        *,
        staff_id: str,
        credential_id: bytes,
        public_key: bytes,
        sign_count: int,
        transports: Sequence[str],
        aaguid: str,
        name: str,
    ) -> Row:
        """Store a verified credential.

        Raises:
            asyncpg.UniqueViolationError: the credential is registered already.
        """
        row: Row | None = await conn.fetchrow(
            """INSERT INTO staff_authenticators
                   (staff_id, credential_id, public_key, sign_count, transports, aaguid, name)
               VALUES ($1::uuid, $2, $3, $4, $5, $6, $7)
               RETURNING id::text AS id, name, transports, created_at, last_used_at""",
            staff_id,
            credential_id,
            public_key,
            sign_count,
            list(transports),
            aaguid,
            name,
        )
        assert row is not None
        return row

    async def advance_sign_count(self, authenticator_id: str, seen: int, new: int) -> bool:
        """Store ``new`` if the stored count is still ``seen`` (two sign-ins racing with one
        counter value cannot both pass); whether it was stored."""
        status: str = await self.pool.execute(
            """UPDATE staff_authenticators SET sign_count = $3, last_used_at = now()
               WHERE id = $1::uuid AND sign_count = $2 AND revoked_at IS NULL""",
            authenticator_id,
            seen,
            new,
        )
        return status == "UPDATE 1"

    @staticmethod
    async def revoke_authenticators(
        conn: Connection, staff_id: str, reason: str, *, authenticator_id: str | None = None
    ) -> int:
        """Revoke the member's active authenticators (or just one); how many. ``cloned``
        also blocks SMS enrolment for the member; ``recovery`` lifts that block."""
        # A recovery also ends the member's live tokens (signed in with a key now gone).
        await conn.execute(
            """UPDATE staff SET webauthn_blocked_at = CASE WHEN $2 = 'cloned' THEN now() END,
                   tokens_not_before = CASE WHEN $2 = 'recovery' THEN now() ELSE tokens_not_before END
               WHERE id = $1::uuid""",
            staff_id,
            reason,
        )
        status: str = await conn.execute(
            """UPDATE staff_authenticators SET revoked_at = now(), revoked_reason = $2
               WHERE staff_id = $1::uuid AND revoked_at IS NULL AND ($3::uuid IS NULL OR id = $3::uuid)""",
            staff_id,
            reason,
            authenticator_id,
        )
        return int(status.split()[-1])
