"""All SQL of the message centre."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from core.db import Connection, Pool

__all__ = ["MessagesRepository", "Row"]

Row = asyncpg.Record

_COLUMNS = "id, category, title, body, link_kind, link_id, data, created_at, read_at"


class MessagesRepository:
    """Inboxes, preferences and push tokens in PostgreSQL.

    Args:
        pool: The shared pool.
    """

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @staticmethod
    async def insert(
        conn: Connection,
        *,
        account_id: str,
        category: str,
        title: str,
        body: str,
        link_kind: str | None,
        link_id: str | None,
        data: dict[str, Any] | None,
        dedupe_key: str,
        retention: dt.timedelta,
    ) -> int | None:
        """Add one message on ``conn`` (inside the producer's transaction); ``None`` if its
        dedupe key was used before (a repeated or concurrently processed event).

        The account's ``message_streams`` row is locked first: messages of one account are
        then committed in id order, which is what makes ``id > Last-Event-ID`` replay exact.
        """
        await conn.execute(
            """INSERT INTO message_streams (account_id) VALUES ($1::uuid)
               ON CONFLICT (account_id) DO UPDATE SET last_id = message_streams.last_id""",
            account_id,
        )
        ident: int | None = await conn.fetchval(
            """INSERT INTO messages
                   (account_id, category, title, body, link_kind, link_id, data, dedupe_key, expires_at)
               VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, now() + $9::interval)
               ON CONFLICT (account_id, dedupe_key) DO NOTHING RETURNING id""",
            account_id,
            category,
            title,
            body,
            link_kind,
            link_id,
            data,
            dedupe_key,
            retention,
        )
        if ident is not None:
            await conn.execute("UPDATE message_streams SET last_id = $2 WHERE account_id = $1::uuid", account_id, ident)
        return ident

    async def page(self, account_id: str, *, unread: bool | None, before: int | None, limit: int) -> list[Row]:
        """A page of the inbox, newest first, older than ``before`` (keyset)."""
        return await self.pool.fetch(
            f"""SELECT {_COLUMNS} FROM messages
                WHERE account_id = $1::uuid AND expires_at > now()
                  AND ($2::bigint IS NULL OR id < $2)
                  AND ($3::boolean IS NULL OR (read_at IS NULL) = $3)
                ORDER BY id DESC LIMIT $4""",  # noqa: S608
            account_id,
            before,
            unread,
            limit,
        )

    async def unread_count(self, account_id: str) -> int:
        """How many unexpired messages are unread."""
        count: int = await self.pool.fetchval(
            "SELECT count(*) FROM messages WHERE account_id = $1::uuid AND read_at IS NULL AND expires_at > now()",
            account_id,
        )
        return count

    async def after(self, account_id: str, after_id: int, limit: int) -> list[Row]:
        """Messages newer than ``after_id``, oldest first (an SSE stream's replay)."""
        return await self.pool.fetch(
            f"""SELECT {_COLUMNS} FROM messages WHERE account_id = $1::uuid AND id > $2
                ORDER BY id LIMIT $3""",  # noqa: S608
            account_id,
            after_id,
            limit,
        )

    async def last_id(self, account_id: str) -> int:
        """The newest message id of the account (0 if none)."""
        value: int | None = await self.pool.fetchval(
            "SELECT last_id FROM message_streams WHERE account_id = $1::uuid", account_id
        )
        return value or 0

    async def get(self, account_id: str, message_id: int) -> Row | None:
        """One of the account's messages (``None`` for anyone else's)."""
        return await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM messages WHERE id = $1 AND account_id = $2::uuid AND expires_at > now()",  # noqa: S608
            message_id,
            account_id,
        )

    async def mark_read(self, account_id: str, message_id: int) -> Row | None:
        """Mark one message read (keeps the first ``read_at``); ``None`` if not the account's."""
        return await self.pool.fetchrow(
            f"""UPDATE messages SET read_at = coalesce(read_at, now())
                WHERE id = $1 AND account_id = $2::uuid AND expires_at > now() RETURNING {_COLUMNS}""",  # noqa: S608
            message_id,
            account_id,
        )

    async def mark_all_read(self, account_id: str) -> int:
        """Mark every unread message read; how many were."""
        result = await self.pool.execute(
            "UPDATE messages SET read_at = now() WHERE account_id = $1::uuid AND read_at IS NULL", account_id
        )
        return int(result.split()[-1])

    async def purge_expired(self, limit: int) -> int:
        """Delete up to ``limit`` messages past their retention."""
        result = await self.pool.execute(
            """DELETE FROM messages WHERE id IN
               (SELECT id FROM messages WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)""",
            limit,
        )
        return int(result.split()[-1])

    # preferences and push tokens ----------------------------------------------------------

    async def preferences(self, account_id: str) -> Any:
        """The stored preferences document (``None``: defaults)."""
        return await self.pool.fetchval(
            "SELECT document FROM notification_preferences WHERE account_id = $1::uuid", account_id
        )

    async def put_preferences(self, account_id: str, document: Any) -> None:
        """Replace the whole preferences document."""
        await self.pool.execute(
            """INSERT INTO notification_preferences (account_id, document) VALUES ($1::uuid, $2)
               ON CONFLICT (account_id) DO UPDATE SET document = excluded.document, updated_at = now()""",
            account_id,
            document,
        )

    async def put_push_token(self, session_id: str, account_id: str, token_enc: bytes) -> None:
        """Set the push token of one session (its device)."""
        await self.pool.execute(
            """INSERT INTO push_tokens (session_id, account_id, token_enc) VALUES ($1, $2::uuid, $3)
               ON CONFLICT (session_id) DO UPDATE SET account_id = excluded.account_id,
                   token_enc = excluded.token_enc, updated_at = now()""",
            session_id,
            account_id,
            token_enc,
        )

    async def push_tokens(self, account_id: str) -> list[Row]:
        """The push tokens of the account's sessions, newest first."""
        return await self.pool.fetch(
            "SELECT session_id, token_enc FROM push_tokens WHERE account_id = $1::uuid ORDER BY updated_at DESC",
            account_id,
        )
