"""All SQL of the service hall, and the typed rows it returns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from core.db import Connection, Pool, Repository, row_as, rows_as
from core.levels import Level
from hall.errors import AlreadyRated

__all__ = [
    "ApplicationRow",
    "BundleRow",
    "BundleTemplateRow",
    "HallRepository",
    "HeldEventRow",
    "MatterRow",
    "QueuedApplicationRow",
    "RatingRow",
    "RatingSummaryRow",
    "TemplateStep",
    "TimelineRow",
]


class MatterRow(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a matter (``form`` as stored: ``{"fields": [...]}``)."""

    code: str
    version: int
    name: str
    department: str
    applicant_type: Literal["person"]
    required_level: Level
    time_limit_working_days: int
    fee_cents: int
    form: dict[str, Any]


class ApplicationRow(msgspec.Struct, frozen=True, kw_only=True):
    """One application (ids as text; ``form_enc`` sealed with the vault's ``hall-form`` context)."""

    id: str
    number: str
    account_id: str
    region_code: str | None
    matter_code: str
    matter_version: int
    department: str
    status: str
    form_enc: bytes
    request_hash: bytes | None
    case_id: str | None
    submit_failed: bool
    resubmissions: int
    bundle_id: str | None
    submitted_at: dt.datetime
    due_at: dt.datetime
    updated_at: dt.datetime


class QueuedApplicationRow(ApplicationRow, frozen=True, kw_only=True):
    """An application in a staff queue, with whether it is past its due date unconcluded."""

    overdue: bool


class TimelineRow(msgspec.Struct, frozen=True, kw_only=True):
    """One status of an application's history."""

    application_id: str
    status: str
    at: dt.datetime
    note: str | None


class HeldEventRow(msgspec.Struct, frozen=True, kw_only=True):
    """A department event kept until it becomes legal."""

    event_id: str
    status: str
    at: dt.datetime
    note: str | None


class RatingRow(msgspec.Struct, frozen=True, kw_only=True):
    """A stored rating."""

    application_id: str
    score: int
    comment: str | None
    created_at: dt.datetime


class RatingSummaryRow(msgspec.Struct, frozen=True, kw_only=True):
    """Ratings of one department."""

    department: str
    count: int
    average: float
    low: int
    open_follow_ups: int


class TemplateStep(msgspec.Struct, frozen=True, kw_only=True):
    """One step of a bundle template.

    Attributes:
        matter: The step's matter.
        after: The matters whose applications must have progressed before this one starts.
        renames: The step's field name → the bundle form's field name (stored as ``map``).
        fixed: Values the step's form always has (stored as ``set``).
    """

    matter: str
    after: list[str] = msgspec.field(default_factory=list)
    renames: dict[str, str] = msgspec.field(default_factory=dict, name="map")
    fixed: dict[str, Any] = msgspec.field(default_factory=dict, name="set")


class BundleTemplateRow(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a bundle template (``form`` as stored: ``{"fields": [...]}``)."""

    code: str
    version: int
    name: str
    steps: list[TemplateStep]
    form: dict[str, Any]


class BundleRow(msgspec.Struct, frozen=True, kw_only=True):
    """One citizen's bundle (``form_enc`` sealed like an application's)."""

    id: str
    account_id: str
    region_code: str | None
    template_code: str
    template_version: int
    status: Literal["running", "completed", "needs_attention"]
    form_enc: bytes
    request_hash: bytes
    idempotency_key: str
    created_at: dt.datetime
    updated_at: dt.datetime


_APP_COLUMNS = """a.id::text AS id, a.number, a.account_id::text AS account_id, a.region_code,
    a.matter_code, a.matter_version, a.department, a.status, a.form_enc, a.request_hash,
    a.case_id, a.submit_failed, a.resubmissions, a.bundle_id::text AS bundle_id,
    a.submitted_at, a.due_at, a.updated_at"""
_BUNDLE_COLUMNS = """id::text AS id, account_id::text AS account_id, region_code, template_code,
    template_version, status, form_enc, request_hash, idempotency_key, created_at, updated_at"""


class HallRepository(Repository):
    """Matters, applications, events, ratings and bundles in PostgreSQL.

    Args:
        pool: The shared pool.
        read_pool: A read replica for the officers' history-only lists (the staff queue and the
            rating summary, ``ONECITY_DATABASE_READ_URL``); they may lag the primary by the
            replication delay. Default: ``pool``.
    """

    def __init__(self, pool: Pool, *, read_pool: Pool | None = None) -> None:
        super().__init__(pool)
        self.read_pool = read_pool or pool

    # matters ------------------------------------------------------------------------------

    async def list_matters(
        self, *, q: str | None, department: str | None, after: str | None, limit: int
    ) -> list[MatterRow]:
        """The newest active version of each matter, by code, after the cursor ``after``."""
        rows = await self.pool.fetch(
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
        return rows_as(MatterRow, rows)

    async def get_matter(self, code: str, version: int | None = None) -> MatterRow | None:
        """A matter's newest active version, or the given version."""
        if version is not None:
            row = await self.pool.fetchrow("SELECT * FROM hall_matters WHERE code = $1 AND version = $2", code, version)
        else:
            row = await self.pool.fetchrow(
                "SELECT * FROM hall_matters WHERE code = $1 AND active ORDER BY version DESC LIMIT 1", code
            )
        return row_as(MatterRow, row)

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

    async def by_idempotency_key(self, account_id: str, key: str) -> ApplicationRow | None:
        """The citizen's application submitted with ``key``."""
        row = await self.pool.fetchrow(
            f"SELECT {_APP_COLUMNS} FROM hall_applications a WHERE account_id = $1::uuid AND idempotency_key = $2",  # noqa: S608
            account_id,
            key,
        )
        return row_as(ApplicationRow, row)

    async def get_application(self, application_id: str, *, account_id: str | None = None) -> ApplicationRow | None:
        """One application (only the citizen's own when ``account_id`` is given)."""
        row = await self.pool.fetchrow(
            f"""SELECT {_APP_COLUMNS} FROM hall_applications a
                WHERE id = $1::uuid AND ($2::uuid IS NULL OR account_id = $2::uuid)""",  # noqa: S608
            application_id,
            account_id,
        )
        return row_as(ApplicationRow, row)

    @staticmethod
    async def lock_application(
        conn: Connection, *, application_id: str | None = None, number: str | None = None
    ) -> ApplicationRow | None:
        """One application, locked for this transaction (by id or number)."""
        row = await conn.fetchrow(
            f"""SELECT {_APP_COLUMNS} FROM hall_applications a
                WHERE ($1::uuid IS NULL OR id = $1::uuid) AND ($2::text IS NULL OR number = $2)
                FOR UPDATE""",  # noqa: S608
            application_id,
            number,
        )
        return row_as(ApplicationRow, row)

    async def list_applications(
        self, account_id: str, *, status: str | None, after: tuple[dt.datetime, str] | None, limit: int
    ) -> list[ApplicationRow]:
        """The citizen's applications, newest first."""
        rows = await self.pool.fetch(
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
        return rows_as(ApplicationRow, rows)

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
    ) -> list[QueuedApplicationRow]:
        """Applications of citizens registered inside ``region`` (a prefix of their district)."""
        rows = await self.read_pool.fetch(
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
        return rows_as(QueuedApplicationRow, rows)

    async def timelines(self, application_ids: Sequence[str]) -> list[TimelineRow]:
        """The history of several applications, each sorted by ``at``."""
        rows = await self.pool.fetch(
            """SELECT application_id::text AS application_id, status, at, note FROM hall_application_history
               WHERE application_id = ANY($1::uuid[]) ORDER BY application_id, at, id""",
            list(application_ids),
        )
        return rows_as(TimelineRow, rows)

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
    async def held_events(conn: Connection, application_id: str) -> list[HeldEventRow]:
        """The events held for an application, oldest first."""
        rows = await conn.fetch(
            """SELECT event_id, status, at, note FROM hall_held_events WHERE application_id = $1::uuid
               ORDER BY at, received_at""",
            application_id,
        )
        return rows_as(HeldEventRow, rows)

    @staticmethod
    async def release_event(conn: Connection, event_id: str) -> None:
        """Drop a held event (applied now)."""
        await conn.execute("DELETE FROM hall_held_events WHERE event_id = $1", event_id)

    # audit --------------------------------------------------------------------------------

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
    ) -> RatingRow:
        """The new rating.

        Raises:
            AlreadyRated: The application was rated before.
        """
        row = await conn.fetchrow(
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
        rating = row_as(RatingRow, row)
        if rating is None:
            raise AlreadyRated("This application has been rated")
        return rating

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

    async def rating_summary(self, department: str | None, region: str) -> list[RatingSummaryRow]:
        """Count, average and low scores per department, over citizens inside ``region``."""
        rows = await self.read_pool.fetch(
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
        return rows_as(RatingSummaryRow, rows)

    # bundles ------------------------------------------------------------------------------

    async def bundle_templates(self) -> list[BundleTemplateRow]:
        """The newest active version of each bundle template."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT ON (code) * FROM hall_bundle_templates WHERE active ORDER BY code, version DESC"
        )
        return rows_as(BundleTemplateRow, rows)

    async def bundle_template(self, code: str, version: int | None = None) -> BundleTemplateRow | None:
        """One template (newest active, or the given version)."""
        row = await self.pool.fetchrow(
            """SELECT * FROM hall_bundle_templates WHERE code = $1 AND ($2::int IS NULL OR version = $2)
                 AND ($2::int IS NOT NULL OR active) ORDER BY version DESC LIMIT 1""",
            code,
            version,
        )
        return row_as(BundleTemplateRow, row)

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

    async def bundle_by_key(self, account_id: str, key: str) -> BundleRow | None:
        """The citizen's bundle started with ``key``."""
        row = await self.pool.fetchrow(
            f"SELECT {_BUNDLE_COLUMNS} FROM hall_bundles WHERE account_id = $1::uuid AND idempotency_key = $2",  # noqa: S608
            account_id,
            key,
        )
        return row_as(BundleRow, row)

    async def get_bundle(self, bundle_id: str, *, account_id: str | None = None) -> BundleRow | None:
        """One bundle (only the citizen's own when ``account_id`` is given)."""
        row = await self.pool.fetchrow(
            f"""SELECT {_BUNDLE_COLUMNS} FROM hall_bundles
               WHERE id = $1::uuid AND ($2::uuid IS NULL OR account_id = $2::uuid)""",  # noqa: S608
            bundle_id,
            account_id,
        )
        return row_as(BundleRow, row)

    @staticmethod
    async def lock_bundle(conn: Connection, bundle_id: str) -> BundleRow | None:
        """One bundle, locked for this transaction."""
        row = await conn.fetchrow(
            f"SELECT {_BUNDLE_COLUMNS} FROM hall_bundles WHERE id = $1::uuid FOR UPDATE",  # noqa: S608
            bundle_id,
        )
        return row_as(BundleRow, row)

    async def bundle_applications(self, bundle_id: str, conn: Connection | None = None) -> list[ApplicationRow]:
        """The applications a bundle has made so far (on ``conn``, inside its transaction, if given)."""
        rows = await (self.pool if conn is None else conn).fetch(
            f"SELECT {_APP_COLUMNS} FROM hall_applications a WHERE bundle_id = $1::uuid",  # noqa: S608
            bundle_id,
        )
        return rows_as(ApplicationRow, rows)

    @staticmethod
    async def set_bundle_status(conn: Connection, bundle_id: str, status: str, now: dt.datetime) -> None:
        """Change a bundle's status."""
        await conn.execute(
            "UPDATE hall_bundles SET status = $2, updated_at = $3 WHERE id = $1::uuid", bundle_id, status, now
        )
