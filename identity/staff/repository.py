"""All SQL of staff accounts, and the rows it returns."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from core.db import Connection, Repository
from identity.staff.errors import AuthenticatorAlreadyRegistered, SeparationOfDuties, UsernameTaken

__all__ = ["AuditRow", "AuthenticatorRow", "StaffRepository", "StaffRow", "StoredCredential"]


class StaffRow(msgspec.Struct, frozen=True, kw_only=True):
    """A staff member as stored (``disabled`` and ``webauthn_blocked`` from their timestamps)."""

    id: str
    username: str
    display_name: str
    phone_enc: bytes
    password_hash: str
    roles: list[str]
    region_code: str
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None
    webauthn_blocked: bool


class AuthenticatorRow(msgspec.Struct, frozen=True, kw_only=True):
    """A registered security key (WebAuthn credential)."""

    id: str
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str]
    name: str
    created_at: datetime
    last_used_at: datetime | None


class StoredCredential(msgspec.Struct, frozen=True, kw_only=True):
    """What a sign-in assertion is checked against: the key and its last signature counter."""

    id: str
    public_key: bytes
    sign_count: int


class AuditRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the audit log."""

    id: int
    at: datetime
    actor_type: str
    actor_id: str | None
    subject_id: str | None
    action: str
    outcome: str
    client_ip: str | None
    details: dict[str, Any] | None


def _staff(record: asyncpg.Record) -> StaffRow:
    # Built field by field: a staff row is read on every sign-in step.
    return StaffRow(
        id=record["id"],
        username=record["username"],
        display_name=record["display_name"],
        phone_enc=record["phone_enc"],
        password_hash=record["password_hash"],
        roles=list(record["roles"]),
        region_code=record["region_code"],
        disabled=record["disabled"],
        created_at=record["created_at"],
        last_login_at=record["last_login_at"],
        webauthn_blocked=record["webauthn_blocked"],
    )


def _authenticator(record: asyncpg.Record) -> AuthenticatorRow:
    return AuthenticatorRow(
        id=record["id"],
        credential_id=bytes(record["credential_id"]),
        public_key=bytes(record["public_key"]),
        sign_count=record["sign_count"],
        transports=list(record["transports"]),
        name=record["name"],
        created_at=record["created_at"],
        last_used_at=record["last_used_at"],
    )


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

_AUTHENTICATOR_COLUMNS = (
    "id::text AS id, credential_id, public_key, sign_count, transports, name, created_at, last_used_at"
)

_COLUMNS = """id::text AS id, username, display_name, phone_enc, password_hash, roles, region_code,
    disabled_at IS NOT NULL AS disabled, created_at, last_login_at,
    webauthn_blocked_at IS NOT NULL AS webauthn_blocked"""


class StaffRepository(Repository):
    """Reads and writes the ``staff`` table, staff security keys, and reads the audit log.

    Methods that take a ``conn`` run inside the caller's :meth:`transaction`; the others
    run on a pooled connection of their own.
    """

    async def by_username(self, username: str) -> StaffRow | None:
        """One staff member by username (disabled ones too)."""
        record = await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM staff WHERE username = $1", username)  # noqa: S608
        return None if record is None else _staff(record)

    async def by_id(self, staff_id: str) -> StaffRow | None:
        """One staff member by id (``None`` for anything that is not one, e.g. not a UUID)."""
        try:
            uuid.UUID(staff_id)
        except ValueError:
            return None
        record = await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM staff WHERE id = $1::uuid", staff_id)  # noqa: S608
        return None if record is None else _staff(record)

    async def list(self) -> builtins.list[StaffRow]:
        """Everyone, by username."""
        return [_staff(r) for r in await self.pool.fetch(f"SELECT {_COLUMNS} FROM staff ORDER BY username")]  # noqa: S608

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
            UsernameTaken: another staff member has the username.
        """
        try:
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
        except asyncpg.UniqueViolationError:
            raise UsernameTaken(username) from None
        return staff_id

    @staticmethod
    async def set_roles(conn: Connection, staff_id: str, roles: Sequence[str]) -> builtins.list[str]:
        """Replace the roles (row locked for the transaction); returns the previous ones.

        Raises:
            SeparationOfDuties: the roles break separation of duties (the table's constraint;
                callers check first with :func:`identity.staff.admin.check_roles`).
        """
        old: list[str] = await conn.fetchval("SELECT roles FROM staff WHERE id = $1::uuid FOR UPDATE", staff_id)
        try:
            await conn.execute(
                "UPDATE staff SET roles = $2, tokens_not_before = now() WHERE id = $1::uuid", staff_id, list(roles)
            )
        except asyncpg.CheckViolationError:
            raise SeparationOfDuties("roles: these roles may not be held together (separation of duties)") from None
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
    ) -> builtins.list[AuditRow]:
        """Audit rows newest first, below ``before_id``, whose subject lies in ``region``
        (rows whose subject has no region only when ``sees_unregioned``)."""
        like = None if action_prefix is None else action_prefix.replace("_", r"\_") + "%"
        records = await self.pool.fetch(_AUDIT_PAGE, before_id, action, like, since, region, sees_unregioned, limit)
        return [
            AuditRow(
                id=r["id"],
                at=r["at"],
                actor_type=r["actor_type"],
                actor_id=r["actor_id"],
                subject_id=r["subject_id"],
                action=r["action"],
                outcome=r["outcome"],
                client_ip=r["client_ip"],
                details=r["details"],
            )
            for r in records
        ]

    # WebAuthn authenticators -------------------------------------------------------------

    async def active_authenticators(self, staff_id: str) -> builtins.list[AuthenticatorRow]:
        """The member's authenticators that may sign in, oldest first."""
        records = await self.pool.fetch(
            f"""SELECT {_AUTHENTICATOR_COLUMNS} FROM staff_authenticators
                WHERE staff_id = $1::uuid AND revoked_at IS NULL ORDER BY created_at""",  # noqa: S608 - constants only
            staff_id,
        )
        return [_authenticator(r) for r in records]

    async def has_authenticator(self, staff_id: str) -> bool:
        """Whether the member has an authenticator that may sign in."""
        found: bool = await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM staff_authenticators WHERE staff_id = $1::uuid AND revoked_at IS NULL)",
            staff_id,
        )
        return found

    async def authenticator(self, staff_id: str, credential_id: bytes) -> StoredCredential | None:
        """The member's active authenticator with this credential id."""
        record = await self.pool.fetchrow(
            """SELECT id::text AS id, public_key, sign_count FROM staff_authenticators
               WHERE staff_id = $1::uuid AND credential_id = $2 AND revoked_at IS NULL""",
            staff_id,
            credential_id,
        )
        if record is None:
            return None
        return StoredCredential(
            id=record["id"], public_key=bytes(record["public_key"]), sign_count=record["sign_count"]
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
    ) -> AuthenticatorRow:
        """Store a verified credential.

        Raises:
            AuthenticatorAlreadyRegistered: the credential is registered already.
        """
        try:
            record = await conn.fetchrow(
                f"""INSERT INTO staff_authenticators
                        (staff_id, credential_id, public_key, sign_count, transports, aaguid, name)
                    VALUES ($1::uuid, $2, $3, $4, $5, $6, $7)
                    RETURNING {_AUTHENTICATOR_COLUMNS}""",  # noqa: S608 - constants only
                staff_id,
                credential_id,
                public_key,
                sign_count,
                list(transports),
                aaguid,
                name,
            )
        except asyncpg.UniqueViolationError:
            raise AuthenticatorAlreadyRegistered() from None
        assert record is not None
        return _authenticator(record)

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
