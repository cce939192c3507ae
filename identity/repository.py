"""All SQL of the identity domain, and the rows it returns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from core.db import Connection, Repository, rows_as
from core.levels import Level
from identity.errors import IdNumberBoundElsewhere
from identity.pii import AccountColumns

__all__ = [
    "BULK_ACCOUNT_COLUMNS",
    "BULK_SESSION_COLUMNS",
    "BULK_TOKEN_COLUMNS",
    "AccountRow",
    "EndedByCorrection",
    "IdentityRepository",
    "RecentRevocation",
    "RevocationRecord",
    "RotatedSession",
    "SessionRow",
    "SpentToken",
]


class AccountRow(msgspec.Struct, frozen=True, kw_only=True):
    """An account as stored: its identity sealed (see :mod:`identity.pii`)."""

    id: str
    level: Level
    phone_enc: bytes
    name_enc: bytes | None
    id_number_enc: bytes | None
    id_number_index: bytes | None
    region_code: str | None
    created_at: datetime


class RotatedSession(msgspec.Struct, frozen=True, kw_only=True):
    """A refresh token spent for a new one: its session and the session's account."""

    session_id: str
    reverify_required: bool
    account: AccountRow


class SpentToken(msgspec.Struct, frozen=True, kw_only=True):
    """A known refresh token that can no longer be used; ``rotated``: it was spent on a rotation."""

    session_id: str
    account_id: str
    rotated: bool


class SessionRow(msgspec.Struct, frozen=True, kw_only=True):
    """A live session of an account."""

    id: str
    device_name: str
    platform: str
    created_at: datetime
    last_seen_at: datetime


class EndedByCorrection(msgspec.Struct, frozen=True, kw_only=True):
    """What an identity correction ended: the other sessions and the partner grants (ids)."""

    sessions: list[str]
    grants: list[str]


#: Column order of the tuples :meth:`IdentityRepository.copy_signed_in` loads.
BULK_ACCOUNT_COLUMNS = [
    "id",
    "phone_enc",
    "phone_index",
    "level",
    "name_enc",
    "id_number_enc",
    "id_number_index",
    "region_code",
]
BULK_SESSION_COLUMNS = ["id", "account_id", "device_id", "device_name", "platform", "auth_method", "expires_at"]
BULK_TOKEN_COLUMNS = ["token_hash", "session_id", "account_id", "expires_at"]

_ACCOUNT_COLUMNS = "id::text AS id, level, phone_enc, name_enc, id_number_enc, id_number_index, region_code, created_at"


def _account(record: asyncpg.Record) -> AccountRow:
    # Built field by field: the account is read on every login, refresh and /v1/me.
    return AccountRow(
        id=record["id"],
        level=record["level"],
        phone_enc=record["phone_enc"],
        name_enc=record["name_enc"],
        id_number_enc=record["id_number_enc"],
        id_number_index=record["id_number_index"],
        region_code=record["region_code"],
        created_at=record["created_at"],
    )


_ROTATE = """
WITH old AS (
    UPDATE refresh_tokens SET used_at = now()
    WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
    RETURNING session_id
), sess AS (
    UPDATE sessions s SET last_seen_at = now()
    FROM old WHERE s.id = old.session_id AND s.ended_at IS NULL AND s.expires_at > now()
    RETURNING s.id, s.account_id, s.expires_at, s.reverify_required
), fresh AS (
    INSERT INTO refresh_tokens (token_hash, session_id, account_id, expires_at)
    SELECT $2, sess.id, sess.account_id, LEAST(now() + make_interval(secs => $3), sess.expires_at) FROM sess
    RETURNING session_id
), audit AS (
    INSERT INTO audit_log (actor_type, actor_id, subject_id, action, outcome, client_ip, details)
    SELECT 'citizen', sess.account_id::text, sess.account_id::text, 'auth.refresh', 'success', $4,
           jsonb_build_object('session_id', sess.id::text)
    FROM sess
)
SELECT sess.id::text AS session_id, sess.reverify_required, a.id::text AS id, a.level, a.phone_enc,
       a.name_enc, a.id_number_enc, a.id_number_index, a.region_code, a.created_at
FROM sess JOIN accounts a ON a.id = sess.account_id
"""


class IdentityRepository(Repository):
    """Reads and writes accounts, sessions, refresh tokens and mini-program links.

    Methods that take a ``conn`` run inside the caller's :meth:`transaction`; the others
    run on a pooled connection of their own.
    """

    # accounts -----------------------------------------------------------------------------

    @staticmethod
    async def upsert_account(conn: Connection, *, phone_enc: bytes, phone_index: bytes) -> AccountRow:
        """The account of this phone, created at ``L2`` on first login."""
        record = await conn.fetchrow(
            f"""INSERT INTO accounts (phone_enc, phone_index) VALUES ($1, $2)
                ON CONFLICT (phone_index) DO UPDATE SET phone_index = EXCLUDED.phone_index
                RETURNING {_ACCOUNT_COLUMNS}""",  # noqa: S608 - constants only
            phone_enc,
            phone_index,
        )
        assert record is not None
        return _account(record)

    @staticmethod
    async def insert_bound_account_if_absent(conn: Connection, stored: AccountColumns) -> bool:
        """A real-name (``L3``) account, unless its phone or ID number has one; whether it was created."""
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
        return bool(inserted)

    @staticmethod
    async def copy_signed_in(
        conn: Connection,
        *,
        accounts: Sequence[tuple[Any, ...]],
        sessions: Sequence[tuple[Any, ...]],
        refresh_tokens: Sequence[tuple[Any, ...]],
    ) -> None:
        """Bulk-load accounts, their sessions and refresh tokens (``COPY``), then refresh the
        planner's statistics so that later queries plan as on a settled database.

        The tuples are in the column order of :data:`BULK_ACCOUNT_COLUMNS`,
        :data:`BULK_SESSION_COLUMNS` and :data:`BULK_TOKEN_COLUMNS`; ``conn`` must not be in
        a transaction (the load is one, ``ANALYZE`` follows it).
        """
        async with conn.transaction():
            await conn.copy_records_to_table("accounts", records=accounts, columns=BULK_ACCOUNT_COLUMNS)
            await conn.copy_records_to_table("sessions", records=sessions, columns=BULK_SESSION_COLUMNS)
            if refresh_tokens:
                await conn.copy_records_to_table("refresh_tokens", records=refresh_tokens, columns=BULK_TOKEN_COLUMNS)
        await conn.execute("ANALYZE accounts, sessions, refresh_tokens")

    async def accounts_in_region(self, region_prefix: str, *, after: str | None, limit: int) -> list[str]:
        """Ids of accounts registered in a region (its code or any finer one), in id order."""
        rows = await self.pool.fetch(
            """SELECT id::text AS id FROM accounts
               WHERE region_code LIKE $1 || '%' AND ($2::uuid IS NULL OR id > $2::uuid)
               ORDER BY id LIMIT $3""",
            region_prefix,
            after,
            limit,
        )
        return [r["id"] for r in rows]

    async def get_account(self, account_id: str) -> AccountRow | None:
        """One account by id."""
        record = await self.pool.fetchrow(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = $1::uuid",  # noqa: S608 - constants only
            account_id,
        )
        return None if record is None else _account(record)

    @staticmethod
    async def set_real_name(
        conn: Connection,
        *,
        account_id: str,
        name_enc: bytes,
        id_number_enc: bytes,
        id_number_index: bytes,
        region_code: str,
    ) -> str | None:
        """Bind a verified identity to an account that has none yet: level ``L3``.

        Returns the level, or ``None`` when the account is already bound (a binding only
        changes through :meth:`correct_identity`; the condition makes a concurrent second
        binding lose rather than overwrite).

        Raises:
            IdNumberBoundElsewhere: the ID number is bound to another account.
        """
        try:
            level: str | None = await conn.fetchval(
                """UPDATE accounts SET name_enc = $2, id_number_enc = $3, id_number_index = $4,
                          region_code = $5, level = 'L3', level_changed_at = now()
                   WHERE id = $1::uuid AND id_number_index IS NULL RETURNING level""",
                account_id,
                name_enc,
                id_number_enc,
                id_number_index,
                region_code,
            )
        except asyncpg.UniqueViolationError:
            raise IdNumberBoundElsewhere() from None
        return level

    async def account_of_id_number(self, id_number_index: bytes) -> str | None:
        """The account an ID number is bound to, if any."""
        account_id: str | None = await self.pool.fetchval(
            "SELECT id::text FROM accounts WHERE id_number_index = $1", id_number_index
        )
        return account_id

    @staticmethod
    async def correct_identity(
        conn: Connection,
        *,
        account_id: str,
        keep_session_id: str,
        name_enc: bytes,
        id_number_enc: bytes,
        id_number_index: bytes,
        region_code: str,
        level: str,
    ) -> EndedByCorrection:
        """Move the account to another identity and end what was granted under the old one.

        The old binding is released by the same statement that writes the new one; the
        level is the one the new identity earned (never carried over). Other sessions end
        (their refresh tokens die), partner grants are revoked with their refresh tokens and
        unredeemed codes, consents are withdrawn, and code statuses decided for the old
        identity are dropped. Returns the ended session and grant ids.

        Raises:
            IdNumberBoundElsewhere: the new ID number is bound to another account.
        """
        try:
            await conn.execute(
                """UPDATE accounts SET name_enc = $2, id_number_enc = $3, id_number_index = $4,
                          region_code = $5, level = $6, level_changed_at = now()
                   WHERE id = $1::uuid""",
                account_id,
                name_enc,
                id_number_enc,
                id_number_index,
                region_code,
                level,
            )
        except asyncpg.UniqueViolationError:
            raise IdNumberBoundElsewhere() from None
        ended = await conn.fetch(
            """UPDATE sessions SET ended_at = now(), end_reason = 'identity_corrected'
               WHERE account_id = $1::uuid AND id <> $2::uuid AND ended_at IS NULL RETURNING id::text AS id""",
            account_id,
            keep_session_id,
        )
        await conn.execute(
            """UPDATE refresh_tokens SET revoked_at = now()
               WHERE account_id = $1::uuid AND session_id <> $2::uuid AND revoked_at IS NULL""",
            account_id,
            keep_session_id,
        )
        grants = await conn.fetch(
            """UPDATE oauth_grants SET revoked_at = now(), revoke_reason = 'identity_corrected'
               WHERE account_id = $1::uuid AND revoked_at IS NULL RETURNING id::text AS id""",
            account_id,
        )
        await conn.execute(
            """UPDATE oauth_refresh_tokens SET revoked_at = now()
               WHERE grant_id = ANY($1::uuid[]) AND revoked_at IS NULL""",
            [g["id"] for g in grants],
        )
        await conn.execute(
            "UPDATE oauth_codes SET used_at = now() WHERE account_id = $1::uuid AND used_at IS NULL", account_id
        )
        await conn.execute("DELETE FROM oauth_consents WHERE account_id = $1::uuid", account_id)
        await conn.execute("DELETE FROM holder_status WHERE account_id = $1::uuid", account_id)
        return EndedByCorrection(sessions=[r["id"] for r in ended], grants=[g["id"] for g in grants])

    @staticmethod
    async def set_level(conn: Connection, account_id: str, level: str) -> None:
        """Raise the level (callers check the precondition)."""
        await conn.execute(
            "UPDATE accounts SET level = $2, level_changed_at = now() WHERE id = $1::uuid", account_id, level
        )

    # sessions and refresh tokens ----------------------------------------------------------

    @staticmethod
    async def create_session(
        conn: Connection,
        *,
        account_id: str,
        device_id: str,
        device_name: str,
        platform: str,
        auth_method: str,
        absolute_ttl_s: int,
        reverify_required: bool = False,
    ) -> str:
        """A new session; returns its id (the ``sid``)."""
        sid: str = await conn.fetchval(
            """INSERT INTO sessions (account_id, device_id, device_name, platform, auth_method, expires_at,
                                     reverify_required)
               VALUES ($1::uuid, $2, $3, $4, $5, now() + make_interval(secs => $6), $7) RETURNING id::text""",
            account_id,
            device_id,
            device_name,
            platform,
            auth_method,
            absolute_ttl_s,
            reverify_required,
        )
        return sid

    @staticmethod
    async def dormant_on_new_device(conn: Connection, *, account_id: str, device_id: str, idle_days: int) -> bool:
        """Whether a login of ``device_id`` looks like a recycled number reaching this account.

        True when the device never had a session on the account and the account's last
        activity (the newest ``last_seen_at`` of its sessions, else its creation) is at least
        ``idle_days`` old. Runs before the new session is written.
        """
        dormant: bool = await conn.fetchval(
            """SELECT NOT EXISTS (SELECT 1 FROM sessions WHERE account_id = $1::uuid AND device_id = $2)
                      AND COALESCE((SELECT max(last_seen_at) FROM sessions WHERE account_id = $1::uuid),
                                   (SELECT created_at FROM accounts WHERE id = $1::uuid))
                          <= now() - make_interval(days => $3)""",
            account_id,
            device_id,
            idle_days,
        )
        return dormant

    @staticmethod
    async def is_new_device(conn: Connection, *, account_id: str, device_id: str) -> bool:
        """Whether the account had sessions before, none of them on ``device_id`` (its very
        first login is not a "new device"). Runs before the new session is written."""
        new: bool = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM sessions WHERE account_id = $1::uuid)
                      AND NOT EXISTS (SELECT 1 FROM sessions WHERE account_id = $1::uuid AND device_id = $2)""",
            account_id,
            device_id,
        )
        return new

    @staticmethod
    async def clear_reverification(conn: Connection, *, session_id: str, account_id: str) -> bool:
        """The session proved the identity again; True if it was waiting for that."""
        cleared = await conn.fetchval(
            """UPDATE sessions SET reverify_required = false
               WHERE id = $1::uuid AND account_id = $2::uuid AND reverify_required RETURNING true""",
            session_id,
            account_id,
        )
        return bool(cleared)

    @staticmethod
    async def insert_refresh_token(
        conn: Connection, *, token_hash: bytes, session_id: str, account_id: str, idle_ttl_s: int
    ) -> None:
        """Store a refresh token's hash, expiring after the idle lifetime (capped by the session)."""
        await conn.execute(
            """INSERT INTO refresh_tokens (token_hash, session_id, account_id, expires_at)
               SELECT $1, s.id, s.account_id, LEAST(now() + make_interval(secs => $4), s.expires_at)
               FROM sessions s WHERE s.id = $2::uuid AND s.account_id = $3::uuid""",
            token_hash,
            session_id,
            account_id,
            idle_ttl_s,
        )

    async def rotate_refresh_token(
        self, *, old_hash: bytes, new_hash: bytes, idle_ttl_s: int, client_ip: str | None
    ) -> RotatedSession | None:
        """Atomically spend ``old_hash`` and store ``new_hash`` in its family, auditing it.

        One statement, one round trip: the old token is marked used only if it is live and
        its session is live, and the new token, the session's ``last_seen_at`` and the audit
        row are written by the same statement. ``None`` means nothing was rotated.
        """
        record = await self.pool.fetchrow(_ROTATE, old_hash, new_hash, idle_ttl_s, client_ip)
        if record is None:
            return None
        return RotatedSession(
            session_id=record["session_id"], reverify_required=record["reverify_required"], account=_account(record)
        )

    async def find_spent_token(self, token_hash: bytes) -> SpentToken | None:
        """A known token that can no longer be used: rotated, revoked or expired."""
        record = await self.pool.fetchrow(
            """SELECT session_id::text AS session_id, account_id::text AS account_id,
                      used_at IS NOT NULL AS rotated
               FROM refresh_tokens WHERE token_hash = $1""",
            token_hash,
        )
        if record is None:
            return None
        return SpentToken(session_id=record["session_id"], account_id=record["account_id"], rotated=record["rotated"])

    @staticmethod
    async def end_session(conn: Connection, *, session_id: str, account_id: str, reason: str) -> bool:
        """End a live session of ``account_id`` and revoke its refresh tokens."""
        ended = await conn.fetchval(
            """UPDATE sessions SET ended_at = now(), end_reason = $3
               WHERE id = $1::uuid AND account_id = $2::uuid AND ended_at IS NULL RETURNING true""",
            session_id,
            account_id,
            reason,
        )
        await conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE session_id = $1::uuid AND revoked_at IS NULL",
            session_id,
        )
        return bool(ended)

    async def list_sessions(self, account_id: str) -> list[SessionRow]:
        """The account's live sessions, most recently used first."""
        records = await self.pool.fetch(
            """SELECT id::text AS id, device_name, platform, created_at, last_seen_at FROM sessions
               WHERE account_id = $1::uuid AND ended_at IS NULL AND expires_at > now()
               ORDER BY last_seen_at DESC""",
            account_id,
        )
        return rows_as(SessionRow, records)

    # mini-program links -------------------------------------------------------------------

    async def find_link(self, platform: str, openid_index: bytes) -> str | None:
        """The account linked to this platform identity, if any."""
        account_id: str | None = await self.pool.fetchval(
            "SELECT account_id::text FROM miniprogram_links WHERE platform = $1 AND openid_index = $2",
            platform,
            openid_index,
        )
        return account_id

    @staticmethod
    async def link(conn: Connection, *, platform: str, openid_index: bytes, account_id: str) -> None:
        """Link a platform identity to an account (first link wins)."""
        await conn.execute(
            """INSERT INTO miniprogram_links (platform, openid_index, account_id) VALUES ($1, $2, $3::uuid)
               ON CONFLICT (platform, openid_index) DO NOTHING""",
            platform,
            openid_index,
            account_id,
        )


class RecentRevocation(msgspec.Struct, frozen=True, kw_only=True):
    """One revocation of the record a token could still be presented against.

    Attributes:
        kind: The kind's name (:class:`identity.revocation.RevocationKind`).
        id: What was revoked.
        ttl: Seconds its Redis key must live (at least 1).
    """

    kind: str
    id: str
    ttl: int


class RevocationRecord(Repository):
    """The revocations as PostgreSQL records them, read with the kinds' own SQL
    (:class:`identity.revocation.RevocationKind`) for the revocation set."""

    async def any_revoked(self, lookups: Iterable[tuple[str, str]]) -> bool:
        """Whether any ``(lookup SQL, id)`` answers true; one query per pair, in order, until one does."""
        for lookup, value in lookups:
            if await self.pool.fetchval(lookup, value):
                return True
        return False

    async def recent(
        self, rebuild_query: str, *, window_s: int, skew_s: int, bucket: int, buckets: int
    ) -> list[RecentRevocation]:
        """Every revocation of ``bucket`` (of ``buckets``) still relevant: the rows of the set's
        rebuild query (columns ``kind``, ``id``, ``ttl``)."""
        records = await self.pool.fetch(rebuild_query, window_s, skew_s, bucket, buckets)
        return [RecentRevocation(kind=r["kind"], id=r["id"], ttl=r["ttl"]) for r in records]
