"""All SQL of the identity domain."""

from __future__ import annotations

import asyncpg

from core.db import Connection, Pool

__all__ = ["IdentityRepository"]

Row = asyncpg.Record

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
SELECT sess.id::text AS session_id, a.id::text AS account_id, a.level, a.phone_enc, a.name_enc,
       a.id_number_enc, a.created_at, sess.reverify_required
FROM sess JOIN accounts a ON a.id = sess.account_id
"""


class IdentityRepository:
    """Reads and writes accounts, sessions, refresh tokens and mini-program links."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    # accounts -----------------------------------------------------------------------------

    @staticmethod
    async def upsert_account(conn: Connection, *, phone_enc: bytes, phone_index: bytes) -> Row:
        """The account of this phone, created at ``L2`` on first login."""
        row = await conn.fetchrow(
            """INSERT INTO accounts (phone_enc, phone_index) VALUES ($1, $2)
               ON CONFLICT (phone_index) DO UPDATE SET phone_index = EXCLUDED.phone_index
               RETURNING id::text AS id, level, phone_enc, name_enc, id_number_enc, created_at,
                         (xmax = 0) AS created""",
            phone_enc,
            phone_index,
        )
        assert row is not None
        account: Row = row
        return account

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

    async def get_account(self, account_id: str) -> Row | None:
        """One account by id."""
        return await self.pool.fetchrow(
            """SELECT id::text AS id, level, phone_enc, name_enc, id_number_enc, id_number_index, created_at,
                      region_code
               FROM accounts WHERE id = $1::uuid""",
            account_id,
        )

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
            asyncpg.UniqueViolationError: the ID number is bound to another account.
        """
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
    ) -> dict[str, list[str]]:
        """Move the account to another identity and end what was granted under the old one.

        The old binding is released by the same statement that writes the new one; the
        level is the one the new identity earned (never carried over). Other sessions end
        (their refresh tokens die), partner grants are revoked with their refresh tokens and
        unredeemed codes, consents are withdrawn, and code statuses decided for the old
        identity are dropped. Returns the ended session ids and counts.

        Raises:
            asyncpg.UniqueViolationError: the new ID number is bound to another account.
        """
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
        return {"sessions": [r["id"] for r in ended], "grants": [g["id"] for g in grants]}

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
    ) -> Row | None:
        """Atomically spend ``old_hash`` and store ``new_hash`` in its family, auditing it.

        One statement, one round trip: the old token is marked used only if it is live and
        its session is live, and the new token, the session's ``last_seen_at`` and the audit
        row are written by the same statement. ``None`` means nothing was rotated.
        """
        return await self.pool.fetchrow(_ROTATE, old_hash, new_hash, idle_ttl_s, client_ip)

    async def find_spent_token(self, token_hash: bytes) -> Row | None:
        """A known token that can no longer be used: rotated, revoked or expired."""
        return await self.pool.fetchrow(
            """SELECT session_id::text AS session_id, account_id::text AS account_id,
                      used_at IS NOT NULL AS rotated
               FROM refresh_tokens WHERE token_hash = $1""",
            token_hash,
        )

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

    async def list_sessions(self, account_id: str) -> list[Row]:
        """The account's live sessions, most recently used first."""
        return await self.pool.fetch(
            """SELECT id::text AS id, device_name, platform, created_at, last_seen_at FROM sessions
               WHERE account_id = $1::uuid AND ended_at IS NULL AND expires_at > now()
               ORDER BY last_seen_at DESC""",
            account_id,
        )

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
