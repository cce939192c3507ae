"""All SQL of the message centre, and the typed rows it returns."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from core.db import Connection, Repository, row_as, rows_as
from messages.schemas import Category

__all__ = ["DeliveryTarget", "MessageRow", "MessagesRepository", "NoticeRow", "PushTokenRow"]

_COLUMNS = "id, category, title, body, link_kind, link_id, data, created_at, read_at"


class MessageRow(msgspec.Struct, frozen=True, kw_only=True):
    """One message of an inbox (``id`` is also its SSE event id)."""

    id: int
    category: Category
    title: str
    body: str
    link_kind: str | None
    link_id: str | None
    data: Any
    created_at: dt.datetime
    read_at: dt.datetime | None


class DeliveryTarget(msgspec.Struct, frozen=True, kw_only=True):
    """What the push job needs of a message: whose it is, its category and its title."""

    id: int
    account_id: str
    category: Category
    title: str


class PushTokenRow(msgspec.Struct, frozen=True, kw_only=True):
    """One session's device push token (sealed)."""

    session_id: str
    token_enc: bytes


class NoticeRow(msgspec.Struct, frozen=True, kw_only=True):
    """A staff notice to a region."""

    region: str
    title: str
    body: str


class MessagesRepository(Repository):
    """Inboxes, preferences, push tokens, deliveries, notices and code statuses in PostgreSQL.

    Args:
        pool: The shared pool.
    """

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

    async def page(self, account_id: str, *, unread: bool | None, before: int | None, limit: int) -> list[MessageRow]:
        """A page of the inbox, newest first, older than ``before`` (keyset)."""
        rows = await self.pool.fetch(
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
        return rows_as(MessageRow, rows)

    async def unread_count(self, account_id: str) -> int:
        """How many unexpired messages are unread."""
        count: int = await self.pool.fetchval(
            "SELECT count(*) FROM messages WHERE account_id = $1::uuid AND read_at IS NULL AND expires_at > now()",
            account_id,
        )
        return count

    async def after(self, account_id: str, after_id: int, limit: int) -> list[MessageRow]:
        """Messages newer than ``after_id``, oldest first (an SSE stream's replay)."""
        rows = await self.pool.fetch(
            f"""SELECT {_COLUMNS} FROM messages WHERE account_id = $1::uuid AND id > $2
                ORDER BY id LIMIT $3""",  # noqa: S608
            account_id,
            after_id,
            limit,
        )
        return rows_as(MessageRow, rows)

    async def last_id(self, account_id: str) -> int:
        """The newest message id of the account (0 if none)."""
        value: int | None = await self.pool.fetchval(
            "SELECT last_id FROM message_streams WHERE account_id = $1::uuid", account_id
        )
        return value or 0

    async def get(self, account_id: str, message_id: int) -> MessageRow | None:
        """One of the account's messages (``None`` for anyone else's)."""
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM messages WHERE id = $1 AND account_id = $2::uuid AND expires_at > now()",  # noqa: S608
            message_id,
            account_id,
        )
        return row_as(MessageRow, row)

    async def mark_read(self, account_id: str, message_id: int) -> MessageRow | None:
        """Mark one message read (keeps the first ``read_at``); ``None`` if not the account's."""
        row = await self.pool.fetchrow(
            f"""UPDATE messages SET read_at = coalesce(read_at, now())
                WHERE id = $1 AND account_id = $2::uuid AND expires_at > now() RETURNING {_COLUMNS}""",  # noqa: S608
            message_id,
            account_id,
        )
        return row_as(MessageRow, row)

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

    async def push_tokens(self, account_id: str) -> list[PushTokenRow]:
        """The push tokens of the account's sessions, newest first."""
        rows = await self.pool.fetch(
            "SELECT session_id, token_enc FROM push_tokens WHERE account_id = $1::uuid ORDER BY updated_at DESC",
            account_id,
        )
        return rows_as(PushTokenRow, rows)

    # deliveries ---------------------------------------------------------------------------

    async def delivery_target(self, message_id: int) -> DeliveryTarget | None:
        """Whose message ``message_id`` is, and its category and title (``None``: gone)."""
        row = await self.pool.fetchrow(
            "SELECT id, account_id::text AS account_id, category, title FROM messages WHERE id = $1", message_id
        )
        return row_as(DeliveryTarget, row)

    async def record_delivery(self, message_id: int, outcome: str) -> None:
        """The latest outcome of a message's push job."""
        await self.pool.execute(
            """INSERT INTO message_deliveries (message_id, outcome) VALUES ($1, $2)
               ON CONFLICT (message_id) DO UPDATE SET outcome = excluded.outcome, at = now()""",
            message_id,
            outcome,
        )

    # notices ------------------------------------------------------------------------------

    @staticmethod
    async def insert_notice(
        conn: Connection, *, notice_id: str, region: str, title: str, body: str, staff_id: str
    ) -> None:
        """Record a staff notice (its fan-out job is enqueued in the same transaction)."""
        await conn.execute(
            """INSERT INTO message_notices (id, region, title, body, staff_id)
               VALUES ($1::uuid, $2, $3, $4, $5)""",
            notice_id,
            region,
            title,
            body,
            staff_id,
        )

    async def notice(self, notice_id: str) -> NoticeRow | None:
        """One staff notice."""
        row = await self.pool.fetchrow("SELECT region, title, body FROM message_notices WHERE id = $1::uuid", notice_id)
        return row_as(NoticeRow, row)

    @staticmethod
    async def count_recipients(conn: Connection, notice_id: str, *, made: int, finished: bool) -> None:
        """Add one batch's new messages to the notice's count; mark it finished after the last."""
        await conn.execute(
            """UPDATE message_notices SET recipients = recipients + $2,
                   finished_at = CASE WHEN $3 THEN now() ELSE finished_at END
               WHERE id = $1::uuid""",
            notice_id,
            made,
            finished,
        )

    # code statuses ------------------------------------------------------------------------

    @staticmethod
    async def change_code_status(conn: Connection, account_id: str, code_type: str, status: str) -> int | None:
        """Record ``status`` as the code's current one; its new version when it changed, ``None``
        when it is the one known (or the first one known: the baseline, version 0).

        The row is locked for the rest of ``conn``'s transaction, so workers deciding the same
        change at once make one version of it.
        """
        await conn.execute(
            """INSERT INTO message_code_status (account_id, code_type, status, version)
               VALUES ($1::uuid, $2, $3, 0) ON CONFLICT DO NOTHING""",
            account_id,
            code_type,
            status,
        )
        row = await conn.fetchrow(
            """SELECT status, version FROM message_code_status
               WHERE account_id = $1::uuid AND code_type = $2 FOR UPDATE""",
            account_id,
            code_type,
        )
        assert row is not None
        known: str = row["status"]
        if known == status:
            return None
        version: int = row["version"] + 1
        await conn.execute(
            """UPDATE message_code_status SET status = $3, version = $4, changed_at = now()
               WHERE account_id = $1::uuid AND code_type = $2""",
            account_id,
            code_type,
            status,
            version,
        )
        return version

    # job scheduling -----------------------------------------------------------------------

    @staticmethod
    async def lock_schedule(conn: Connection, lock: int) -> None:
        """Serialise schedulers on ``lock`` until ``conn``'s transaction ends."""
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock)

    @staticmethod
    async def job_pending(conn: Connection, entrypoint: str) -> bool:
        """Whether a job of ``entrypoint`` is queued or running."""
        found = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pgqueuer WHERE entrypoint = $1 AND status IN ('queued', 'picked'))",
            entrypoint,
        )
        return bool(found)
