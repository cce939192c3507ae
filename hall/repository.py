"""All SQL of the service hall."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg

from core.db import Connection, Pool

__all__ = ["HallRepository", "Row"]

Row = asyncpg.Record

_APP_COLUMNS = """a.id::text AS id, a.number, a.account_id::text AS account_id, a.region_code,
    a.matter_code, a.matter_version, a.department, a.status, a.form_enc, a.request_hash,
    a.case_id, a.submit_failed, a.resubmissions, a.bundle_id::text AS bundle_id,
    a.submitted_at, a.due_at, a.updated_at"""
_BUNDLE_COLUMNS = """id::text AS id, account_id::text AS account_id, region_code, template_code,
    template_version, status, form_enc, request_hash, idempotency_key, created_at, updated_at"""


class HallRepository:
    """Matters, applications, events, ratings and bundles in PostgreSQL.

    Args:
        pool: The shared pool.
        read_pool: A read replica for the officers' history-only lists (the staff queue and the
            rating summary, ``ONECITY_DATABASE_READ_URL``); they may lag the primary by the
            replication delay. Default: ``pool``.
    """

    def __init__(self, pool: Pool, *, read_pool: Pool | None = None) -> None:
        self.pool = pool
        self.read_pool = read_pool or pool

    # matters ------------------------------------------------------------------------------

    async def list_matters(self, *, q: str | None, department: str | None, after: str | None, limit: int) -> list[Row]:
        """The newest active version of each matter, by code, after the cursor ``after``."""
        return await self.pool.fetch(
            """SELECT * FROM (
                   SELECT DISTINCT ON (code) * FROM hall_matters WHERE active ORDER BY code, version DESC
               ) m
               WHERE ($1::text IS NULL OR m.name ILIKE '%' || $1 || '%' OR m.code ILIKE '%' || $1 || '%')
                 AND ($2::text IS NULL OR m.department = $2)
                 AND ($3::text IS NULL OR m.code > $3)
               ORDER BY m.code LIMIT $4""",
            q,
            department,
            after,
            limit,
        )

    async def get_matter(self, code: str, version: int | None = None) -> Row | None:
        """A matter's newest active version, or the given version."""
        if version is not None:
            return await self.pool.fetchrow(
                "SELECT * FROM hall_matters WHERE code = $1 AND version = $2", code, version
            )
        return await self.pool.fetchrow(
            "SELECT * FROM hall_matters WHERE code = $1 AND active ORDER BY version DESC LIMIT 1", code
        )

    # applications -------------------------------------------------------------------------

    @staticmethod
    async def next_number(conn: Connection) -> int:
        """The next application serial."""
        value: int = await conn.fetchval("SELECT nextval('hall_application_numbers')")
        return value

    @staticmethod
    async def insert_application(conn: Connection, **values: Any) -> bool:
        """Insert an application; ``False`` if the citizen's idempotency key (or the bundle
        step) already has one."""
        columns = list(values)
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        status = await conn.execute(
            f"INSERT INTO hall_applications ({', '.join(columns)}) VALUES ({placeholders}) ON CONFLICT DO NOTHING",  # noqa: S608 - column names are ours
            *values.values(),
        )
        return bool(status.endswith(" 1"))

    async def by_idempotency_key(self, account_id: str, key: str) -> Row | None:
        """The citizen's application submitted with ``key``."""
        return await self.pool.fetchrow(
            f"SELECT {_APP_COLUMNS} FROM hall_applications a WHERE account_id = $1::uuid AND idempotency_key = $2",  # noqa: S608
            account_id,
            key,
        )

    async def get_application(self, application_id: str, *, account_id: str | None = None) -> Row | None:
        """One application (only the citizen's own when ``account_id`` is given)."""
        return await self.pool.fetchrow(
            f"""SELECT {_APP_COLUMNS} FROM hall_applications a
                WHERE id = $1::uuid AND ($2::uuid IS NULL OR account_id = $2::uuid)""",  # noqa: S608
            application_id,
            account_id,
        )

    @staticmethod
    async def lock_application(
        conn: Connection, *, application_id: str | None = None, number: str | None = None
    ) -> Row | None:
        """One application, locked for this transaction (by id or number)."""
        return await conn.fetchrow(
            f"""SELECT {_APP_COLUMNS} FROM hall_applications a
                WHERE ($1::uuid IS NULL OR id = $1::uuid) AND ($2::text IS NULL OR number = $2)
                FOR UPDATE""",  # noqa: S608
            application_id,
            number,
        )

    async def list_applications(
        self, account_id: str, *, status: str | None, after: tuple[dt.datetime, str] | None, limit: int
    ) -> list[Row]:
        """The citizen's applications, newest first."""
        return await self.pool.fetch(
            f"""SELECT {_APP_COLUMNS} FROM hall_applications a
                WHERE account_id = $1::uuid AND ($2::text IS NULL OR status = $2)
                  AND ($3::timestamptz IS NULL OR (submitted_at, id) < ($3, $4::uuid))
                ORDER BY submitted_at DESC, id DESC LIMIT $5""",  # noqa: S608
            account_id,
            status,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )

    async def staff_queue(
        self,
        region: str,
        *,
        status: str | None,
        overdue: bool | None,
        now: dt.datetime,
        concluded: Sequence[str],
        after: tuple[dt.datetime, str] | None,
        limit: int,
    ) -> list[Row]:
        """Applications of citizens registered inside ``region`` (a prefix of their district)."""
        return await self.read_pool.fetch(
            f"""SELECT {_APP_COLUMNS},
                       (a.due_at < $3 AND NOT a.status = ANY($4::text[])) AS overdue
                FROM hall_applications a
                WHERE a.region_code LIKE $1 || '%' AND ($2::text IS NULL OR a.status = $2)
                  AND ($5::boolean IS NULL OR (a.due_at < $3 AND NOT a.status = ANY($4::text[])) = $5)
                  AND ($6::timestamptz IS NULL OR (a.submitted_at, a.id) < ($6, $7::uuid))
                ORDER BY a.submitted_at DESC, a.id DESC LIMIT $8""",  # noqa: S608
            region,
            status,
            now,
            list(concluded),
            overdue,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )

    async def timelines(self, application_ids: Sequence[str]) -> list[Row]:
        """The history of several applications, each sorted by ``at``."""
        return await self.pool.fetch(
            """SELECT application_id::text AS application_id, status, at, note FROM hall_application_history
               WHERE application_id = ANY($1::uuid[]) ORDER BY application_id, at, id""",
            list(application_ids),
        )

    @staticmethod
    async def add_history(
        conn: Connection,
        application_id: str,
        *,
        status: str,
        at: dt.datetime,
        source: str,
        note: str | None = None,
        event_id: str | None = None,
    ) -> bool:
        """Record one status; ``False`` if ``event_id`` was recorded before."""
        result = await conn.execute(
            """INSERT INTO hall_application_history (application_id, event_id, status, at, note, source)
               VALUES ($1::uuid, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING""",
            application_id,
            event_id,
            status,
            at,
            note,
            source,
        )
        return bool(result.endswith(" 1"))

    @staticmethod
    async def set_status(conn: Connection, application_id: str, status: str, now: dt.datetime, **extra: Any) -> None:
        """Change the status (and any of ``form_enc``, ``resubmissions``)."""
        sets = ["status = $2", "updated_at = $3"]
        args: list[Any] = [application_id, status, now]
        for column, value in extra.items():
            args.append(value)
            sets.append(f"{column} = ${len(args)}")
        await conn.execute(f"UPDATE hall_applications SET {', '.join(sets)} WHERE id = $1::uuid", *args)  # noqa: S608

    async def set_case(self, application_id: str, case_id: str) -> None:
        """Remember the department's case id."""
        await self.pool.execute(
            "UPDATE hall_applications SET case_id = $2 WHERE id = $1::uuid AND case_id IS NULL", application_id, case_id
        )

    @staticmethod
    async def mark_submit_failed(conn: Connection, application_id: str) -> None:
        """The case could not be delivered within its retry budget (or was refused for good)."""
        await conn.execute("UPDATE hall_applications SET submit_failed = true WHERE id = $1::uuid", application_id)

    @staticmethod
    async def seen_event(conn: Connection, event_id: str) -> bool:
        """Whether ``event_id`` was applied or is held."""
        found = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM hall_application_history WHERE event_id = $1)
                   OR EXISTS (SELECT 1 FROM hall_held_events WHERE event_id = $1)""",
            event_id,
        )
        return bool(found)

    @staticmethod
    async def hold_event(
        conn: Connection, application_id: str, *, event_id: str, status: str, at: dt.datetime, note: str | None
    ) -> None:
        """Keep an event that may become legal later."""
        await conn.execute(
            """INSERT INTO hall_held_events (event_id, application_id, status, at, note)
               VALUES ($1, $2::uuid, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING""",
            event_id,
            application_id,
            status,
            at,
            note,
        )

    @staticmethod
    async def held_events(conn: Connection, application_id: str) -> list[Row]:
        """The events held for an application, oldest first."""
        return await conn.fetch(
            "SELECT * FROM hall_held_events WHERE application_id = $1::uuid ORDER BY at, received_at",
            application_id,
        )

    @staticmethod
    async def release_event(conn: Connection, event_id: str) -> None:
        """Drop a held event (applied now)."""
        await conn.execute("DELETE FROM hall_held_events WHERE event_id = $1", event_id)

    # ratings ------------------------------------------------------------------------------

    @staticmethod
    async def insert_rating(
        conn: Connection,
        *,
        application_id: str,
        account_id: str,
        department: str,
        matter: str,
        score: int,
        comment: str | None,
    ) -> Row | None:
        """The new rating, or ``None`` if the application was rated before."""
        return await conn.fetchrow(
            """INSERT INTO hall_ratings (application_id, account_id, department, matter_code, score, comment)
               VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6) ON CONFLICT DO NOTHING
               RETURNING application_id::text AS application_id, score, comment, created_at""",
            application_id,
            account_id,
            department,
            matter,
            score,
            comment,
        )

    @staticmethod
    async def open_follow_up(conn: Connection, *, follow_up_id: str, application_id: str, department: str) -> None:
        """Open a follow-up case for the department's staff."""
        await conn.execute(
            """INSERT INTO hall_followups (id, application_id, department) VALUES ($1::uuid, $2::uuid, $3)
               ON CONFLICT DO NOTHING""",
            follow_up_id,
            application_id,
            department,
        )

    async def rating_summary(self, department: str | None, region: str) -> list[Row]:
        """Count, average and low scores per department, over citizens inside ``region``."""
        return await self.read_pool.fetch(
            """SELECT r.department, count(*) AS count, avg(r.score)::float AS average,
                      count(*) FILTER (WHERE r.score <= 2) AS low,
                      count(f.id) FILTER (WHERE f.status = 'open') AS open_follow_ups
               FROM hall_ratings r
               JOIN hall_applications a ON a.id = r.application_id
               LEFT JOIN hall_followups f ON f.application_id = r.application_id
               WHERE ($1::text IS NULL OR r.department = $1) AND a.region_code LIKE $2 || '%'
               GROUP BY r.department ORDER BY r.department""",
            department,
            region,
        )

    # bundles ------------------------------------------------------------------------------

    async def bundle_templates(self) -> list[Row]:
        """The newest active version of each bundle template."""
        return await self.pool.fetch(
            "SELECT DISTINCT ON (code) * FROM hall_bundle_templates WHERE active ORDER BY code, version DESC"
        )

    async def bundle_template(self, code: str, version: int | None = None) -> Row | None:
        """One template (newest active, or the given version)."""
        return await self.pool.fetchrow(
            """SELECT * FROM hall_bundle_templates WHERE code = $1 AND ($2::int IS NULL OR version = $2)
                 AND ($2::int IS NOT NULL OR active) ORDER BY version DESC LIMIT 1""",
            code,
            version,
        )

    @staticmethod
    async def insert_bundle(conn: Connection, **values: Any) -> bool:
        """Insert a bundle; ``False`` if the citizen's idempotency key has one."""
        columns = list(values)
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        status = await conn.execute(
            f"INSERT INTO hall_bundles ({', '.join(columns)}) VALUES ({placeholders}) ON CONFLICT DO NOTHING",  # noqa: S608
            *values.values(),
        )
        return bool(status.endswith(" 1"))

    async def bundle_by_key(self, account_id: str, key: str) -> Row | None:
        """The citizen's bundle started with ``key``."""
        return await self.pool.fetchrow(
            f"SELECT {_BUNDLE_COLUMNS} FROM hall_bundles WHERE account_id = $1::uuid AND idempotency_key = $2",  # noqa: S608
            account_id,
            key,
        )

    async def get_bundle(self, bundle_id: str, *, account_id: str | None = None) -> Row | None:
        """One bundle (only the citizen's own when ``account_id`` is given)."""
        return await self.pool.fetchrow(
            f"""SELECT {_BUNDLE_COLUMNS} FROM hall_bundles
               WHERE id = $1::uuid AND ($2::uuid IS NULL OR account_id = $2::uuid)""",  # noqa: S608
            bundle_id,
            account_id,
        )

    @staticmethod
    async def lock_bundle(conn: Connection, bundle_id: str) -> Row | None:
        """One bundle, locked for this transaction."""
        return await conn.fetchrow(
            f"SELECT {_BUNDLE_COLUMNS} FROM hall_bundles WHERE id = $1::uuid FOR UPDATE",  # noqa: S608
            bundle_id,
        )

    @staticmethod
    async def bundle_applications(conn: Connection | Pool, bundle_id: str) -> list[Row]:
        """The applications a bundle has made so far."""
        return await conn.fetch(
            f"SELECT {_APP_COLUMNS} FROM hall_applications a WHERE bundle_id = $1::uuid",  # noqa: S608
            bundle_id,
        )

    @staticmethod
    async def set_bundle_status(conn: Connection, bundle_id: str, status: str, now: dt.datetime) -> None:
        """Change a bundle's status."""
        await conn.execute(
            "UPDATE hall_bundles SET status = $2, updated_at = $3 WHERE id = $1::uuid", bundle_id, status, now
        )
