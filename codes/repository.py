"""All SQL of the codes domain (tables of ``migrations/0020_codes.sql``) and its typed rows.

Every read returns a frozen Struct of this module, never a driver record. The rows read on the
hot paths (a holder's stored status and override while issuing or verifying, a venue, check-in
pages, ride records) are built positionally from the record, in the column order of their
``SELECT``: as cheap as reading the record's columns by name, without a second decoding pass.
The others go through :func:`core.db.row_as`, which also checks the types.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from codes.rules import HealthStatus
from core.audit import quarantine
from core.db import Connection, Pool, Repository, row_as, rows_as
from core.errors import Conflict, NotFound

__all__ = [
    "RETENTION_LOCK_ID",
    "SCAN_LOG_COLUMNS",
    "CodesRepository",
    "PublishedRuleSet",
    "RideBatch",
    "StoredCheckin",
    "StoredDevice",
    "StoredOverride",
    "StoredRide",
    "StoredRuleSet",
    "StoredStatus",
    "StoredVenue",
]


class PublishedRuleSet(msgspec.Struct, frozen=True):
    """A published health rule version, without its document."""

    version: int
    published_by: str
    published_at: datetime


class StoredRuleSet(msgspec.Struct, frozen=True):
    """A published health rule version with its document (parsed JSON, validated by the caller)."""

    version: int
    published_by: str
    published_at: datetime
    document: Any


class StoredOverride(msgspec.Struct, frozen=True):
    """A staff override of a citizen's health status (possibly lapsed)."""

    account_id: str
    status: HealthStatus
    reason: str
    until: datetime
    set_by: str
    set_at: datetime


class StoredStatus(msgspec.Struct, frozen=True):
    """The last decision stored for one holder and code type."""

    status: str
    rule_version: int | None
    reasons: list[str]
    decided_at: datetime


class StoredVenue(msgspec.Struct, frozen=True):
    """A venue with its one valid venue code.

    The ``code_*`` columns are set in the transaction that creates the venue
    (:func:`codes.venues.register_venue`): no committed venue is without them.
    """

    id: str
    name: str
    address: str
    region_code: str
    owner_type: str
    owner_id: str
    status: str
    code_payload: str
    code_jti: str
    code_expires_at: datetime
    created_at: datetime


class StoredCheckin(msgspec.Struct, frozen=True):
    """One pseudonymous check-in (``id`` orders check-ins of the same instant)."""

    id: int
    pseudonym: str
    checked_in_at: datetime


class StoredDevice(msgspec.Struct, frozen=True):
    """A registered ride-code device key."""

    device_id: str
    account_id: str
    public_key: bytes
    revoked_at: datetime | None
    flagged_at: datetime | None


class RideBatch(msgspec.Struct, frozen=True):
    """The accepted lines of one ride-log upload, as the JSON text the repository sends.

    Attributes:
        lines: How many lines the batch holds.
        json: ``[[device_id, counter, ride_at, scanned_at (Unix seconds), subject], ...]``.
    """

    lines: int
    json: str

    @classmethod
    def of(cls, rows: Sequence[tuple[str, int, int, float, str | None]]) -> RideBatch:
        """The batch of ``(device_id, counter, ride_at, scanned_at, subject)`` rows."""
        return cls(lines=len(rows), json=_ride_batch_encoder.encode(rows).decode())


_ride_batch_encoder = msgspec.json.Encoder()


class StoredRide(msgspec.Struct, frozen=True):
    """One accepted offline ride as a validator uploaded it (``ride_at``: Unix seconds)."""

    device_id: str
    counter: int
    ride_at: int
    validator_id: str
    scanned_at: datetime
    subject: str | None
    partner_id: str


#: Column order of the rows :meth:`CodesRepository.insert_scans` writes; ``scanned_at`` is Unix
#: seconds (float) and ``iat`` Unix seconds (int) or ``None``.
SCAN_LOG_COLUMNS = (
    "scanned_at",
    "partner_id",
    "venue_id",
    "code_type",
    "pseudonym",
    "jti",
    "iat",
    "result",
    "consumed",
)

# Times travel as Unix seconds (float8/bigint arrays encode far cheaper than timestamptz).
_INSERT_SCANS = f"""
INSERT INTO scan_log ({", ".join(SCAN_LOG_COLUMNS)})
SELECT to_timestamp(t.scanned_at), t.partner_id, t.venue_id, t.code_type, t.pseudonym, t.jti, to_timestamp(t.iat),
       t.result, t.consumed
FROM unnest($1::float8[], $2::text[], $3::text[], $4::char(1)[], $5::text[], $6::text[], $7::bigint[], $8::text[],
            $9::boolean[]) AS t(scanned_at, partner_id, venue_id, code_type, pseudonym, jti, iat, result, consumed)
"""  # noqa: S608 - column names from the constant above

# Serialises rule publication across processes (two admins publishing at once).
_RULES_LOCK_ID = 0x0C17_0020
# Only one process at a time runs the retention job.
RETENTION_LOCK_ID = 0x0C17_0021
# First key of the two-key advisory locks of check-ins (one per venue and pseudonym).
_CHECKIN_LOCK_ID = 0x0C17_0022

_RETENTION_TABLES = {
    "scan_log": "scanned_at",
    "checkins": "checked_in_at",
    "ride_records": "scanned_at",
}


# $7: the decision is for a code being issued now (``code_issued_at``, what the periodic
# re-evaluation of current holders selects by); other decisions keep the stamp they had.
_SAVE_STATUS = """INSERT INTO holder_status (account_id, code_type, status, rule_version, reasons, decided_at,
                                  code_issued_at)
   VALUES ($1::uuid, $2, $3, $4, $5, $6, CASE WHEN $7::boolean THEN $6::timestamptz END)
   ON CONFLICT (account_id, code_type) DO UPDATE SET status = EXCLUDED.status,
       rule_version = EXCLUDED.rule_version, reasons = EXCLUDED.reasons, decided_at = EXCLUDED.decided_at,
       code_issued_at = coalesce(EXCLUDED.code_issued_at, holder_status.code_issued_at)
   WHERE holder_status.decided_at <= EXCLUDED.decided_at"""


class CodesRepository(Repository):
    """Reads and writes rules, overrides, statuses, pseudonyms, scans, venues and devices.

    Methods that take a ``tx`` first run inside the caller's
    ``async with repository.transaction() as tx:``; the others run on their own connection.

    Args:
        pool: The primary (through the pooler).
        read_pool: A read replica for the heavy, history-only reads (check-in lists for
            exposure queries); ``None``: the primary. Nothing that a
            decision depends on (rules in force, overrides, pseudonyms, devices) reads from it.
    """

    def __init__(self, pool: Pool, *, read_pool: Pool | None = None) -> None:
        super().__init__(pool)
        self.read_pool = read_pool or pool

    async def close(self) -> None:
        """Close the pool, for a command that opened it for this repository alone."""
        await self.pool.close()

    # health rules ---------------------------------------------------------------------------

    async def latest_ruleset(self) -> StoredRuleSet | None:
        """The highest published version (the active one), or ``None`` if none is stored."""
        row = await self.pool.fetchrow(
            "SELECT version, document, published_by, published_at FROM health_rulesets ORDER BY version DESC LIMIT 1"
        )
        return row_as(StoredRuleSet, row)

    async def get_ruleset(self, version: int) -> StoredRuleSet | None:
        """One published version."""
        row = await self.pool.fetchrow(
            "SELECT version, document, published_by, published_at FROM health_rulesets WHERE version = $1", version
        )
        return row_as(StoredRuleSet, row)

    async def list_rulesets(self) -> list[PublishedRuleSet]:
        """Every published version, newest first (without documents)."""
        rows = await self.pool.fetch(
            "SELECT version, published_by, published_at FROM health_rulesets ORDER BY version DESC"
        )
        return rows_as(PublishedRuleSet, rows)

    async def lock_rules(self, tx: Connection) -> int | None:
        """Take the publication lock (transaction-scoped); return the highest stored version."""
        await tx.execute("SELECT pg_advisory_xact_lock($1)", _RULES_LOCK_ID)
        version: int | None = await tx.fetchval("SELECT max(version) FROM health_rulesets")
        return version

    async def insert_ruleset(
        self, tx: Connection, *, version: int, document: Any, published_by: str
    ) -> PublishedRuleSet:
        """Store a new version; returns it.

        Raises:
            Conflict: the version is already stored (a concurrent publication won).
        """
        try:
            row = await tx.fetchrow(
                """INSERT INTO health_rulesets (version, document, published_by) VALUES ($1, $2, $3)
                   RETURNING version, published_by, published_at""",
                version,
                document,
                published_by,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"Version {version} is already published") from None
        stored = row_as(PublishedRuleSet, row)
        assert stored is not None
        return stored

    # overrides ------------------------------------------------------------------------------

    async def get_override(self, account_id: str) -> StoredOverride | None:
        """The citizen's override (possibly lapsed), if any."""
        row = await self.pool.fetchrow(
            """SELECT account_id::text AS account_id, status, reason, until, set_by, set_at
               FROM health_overrides WHERE account_id = $1::uuid""",
            account_id,
        )
        # Read by every health code issued: built positionally (columns in field order).
        return None if row is None else StoredOverride(*row)

    async def upsert_override(
        self, tx: Connection, *, account_id: str, status: str, reason: str, until: datetime, set_by: str
    ) -> StoredOverride:
        """Set (replace) the citizen's override."""
        row = await tx.fetchrow(
            """INSERT INTO health_overrides (account_id, status, reason, until, set_by, set_at)
               VALUES ($1::uuid, $2, $3, $4, $5, now())
               ON CONFLICT (account_id) DO UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason,
                   until = EXCLUDED.until, set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at
               RETURNING account_id::text AS account_id, status, reason, until, set_by, set_at""",
            account_id,
            status,
            reason,
            until,
            set_by,
        )
        stored = row_as(StoredOverride, row)
        assert stored is not None
        return stored

    async def delete_override(self, tx: Connection, account_id: str) -> bool:
        """Lift the citizen's override; false if there was none."""
        return bool(
            await tx.fetchval("DELETE FROM health_overrides WHERE account_id = $1::uuid RETURNING true", account_id)
        )

    # last known statuses --------------------------------------------------------------------

    async def save_status(
        self,
        *,
        account_id: str,
        code_type: str,
        status: str,
        rule_version: int | None,
        reasons: Sequence[str],
        decided_at: datetime,
        issuing: bool = False,
    ) -> None:
        """Remember a decision; an older one never replaces a newer one. ``issuing``: the
        decision is for a code being issued now."""
        await self.pool.execute(
            _SAVE_STATUS, account_id, code_type, status, rule_version, list(reasons), decided_at, issuing
        )

    async def save_statuses(self, rows: Sequence[tuple[str, str, str, int | None, Sequence[str], datetime]]) -> None:
        """:meth:`save_status` of several decisions (none for a code being issued) in one round
        trip (a pipelined ``executemany``).

        Args:
            rows: ``(account_id, code_type, status, rule_version, reasons, decided_at)`` each.
        """
        if rows:
            await self.pool.executemany(_SAVE_STATUS, [(*row[:4], list(row[4]), row[5], False) for row in rows])

    async def current_holders(self, code_type: str, *, since: datetime, after: str | None, limit: int) -> list[str]:
        """Accounts issued a code of ``code_type`` at or after ``since``, by account id, the
        first ``limit`` after ``after`` (a keyset over the primary key)."""
        rows = await self.pool.fetch(
            """SELECT account_id::text AS account_id FROM holder_status
               WHERE code_type = $1 AND code_issued_at >= $2 AND ($3::uuid IS NULL OR account_id > $3::uuid)
               ORDER BY account_id LIMIT $4""",
            code_type,
            since,
            after,
            limit,
        )
        return [r["account_id"] for r in rows]

    async def last_status(self, account_id: str, code_type: str) -> StoredStatus | None:
        """The stored decision of one holder and type."""
        row = await self.pool.fetchrow(
            """SELECT status, rule_version, reasons, decided_at FROM holder_status
               WHERE account_id = $1::uuid AND code_type = $2""",
            account_id,
            code_type,
        )
        # On the verification path: built positionally (columns in field order).
        return None if row is None else StoredStatus(*row)

    # pseudonyms -----------------------------------------------------------------------------

    async def register_subject(self, *, code_type: str, pseudonym: str, account_id: str) -> str | None:
        """Record pseudonym → account; return the account the pseudonym belongs to.

        A result other than ``account_id`` is a collision (or this account already has another
        pseudonym of the type, after a key change): the caller must not issue.
        """
        owner: str | None = await self.pool.fetchval(
            """WITH ins AS (
                   INSERT INTO code_subjects (code_type, pseudonym, account_id) VALUES ($1, $2, $3::uuid)
                   ON CONFLICT DO NOTHING RETURNING account_id
               )
               SELECT account_id::text FROM ins
               UNION ALL
               SELECT account_id::text FROM code_subjects WHERE code_type = $1 AND pseudonym = $2
               LIMIT 1""",
            code_type,
            pseudonym,
            account_id,
        )
        if owner is None:
            # A concurrent first registration of the same row: ON CONFLICT waited for it to
            # commit, but this statement's snapshot predates it. A new statement sees it.
            owner = await self.pool.fetchval(
                "SELECT account_id::text FROM code_subjects WHERE code_type = $1 AND pseudonym = $2",
                code_type,
                pseudonym,
            )
        return owner

    async def account_of(self, code_type: str, pseudonym: str) -> str | None:
        """The account behind a pseudonym."""
        account: str | None = await self.pool.fetchval(
            "SELECT account_id::text FROM code_subjects WHERE code_type = $1 AND pseudonym = $2", code_type, pseudonym
        )
        return account

    # scan log -------------------------------------------------------------------------------

    async def insert_scans(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Write scan rows (in :data:`SCAN_LOG_COLUMNS` order) in one statement, committed.

        One ``INSERT ... SELECT FROM unnest(...)`` with a column array per field: a single
        prepared statement and round trip whatever the batch size (``COPY`` through asyncpg
        costs an extra introspection query per batch, which dominates small batches).
        """
        columns = list(zip(*rows, strict=True))
        await self.pool.execute(_INSERT_SCANS, *(list(column) for column in columns))

    async def quarantine_scan(self, row: Sequence[Any], exc: BaseException) -> None:
        """Keep a scan row that cannot be stored (a data error) in ``write_quarantine``."""
        await quarantine(self.pool, "scan_log", SCAN_LOG_COLUMNS, row, exc)

    # venues and check-ins -------------------------------------------------------------------

    async def insert_venue(
        self,
        tx: Connection,
        *,
        venue_id: str,
        name: str,
        address: str,
        region: str,
        owner_type: str,
        owner_id: str,
    ) -> None:
        """A new venue (its code is set right after, in the same transaction)."""
        await tx.execute(
            """INSERT INTO venues (id, name, address, region_code, owner_type, owner_id)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            venue_id,
            name,
            address,
            region,
            owner_type,
            owner_id,
        )

    async def set_venue_code(
        self, tx: Connection, *, venue_id: str, payload: str, jti: str, expires_at: datetime
    ) -> StoredVenue:
        """Make ``payload`` the venue's one valid code."""
        row = await tx.fetchrow(
            """UPDATE venues SET code_payload = $2, code_jti = $3, code_expires_at = $4 WHERE id = $1
               RETURNING id, name, address, region_code, owner_type, owner_id, status, code_payload, code_jti,
                         code_expires_at, created_at""",
            venue_id,
            payload,
            jti,
            expires_at,
        )
        stored = row_as(StoredVenue, row)
        assert stored is not None
        return stored

    async def get_venue(self, venue_id: str) -> StoredVenue | None:
        """One venue."""
        row = await self.pool.fetchrow(
            """SELECT id, name, address, region_code, owner_type, owner_id, status, code_payload, code_jti,
                      code_expires_at, created_at
               FROM venues WHERE id = $1""",
            venue_id,
        )
        # On the verification and check-in paths: built positionally (columns in field order).
        return None if row is None else StoredVenue(*row)

    async def partner_venue_regions(self, client_id: str) -> list[str]:
        """The regions in which the partner may register venues (none if not configured)."""
        rows = await self.pool.fetch(
            "SELECT region_code FROM partner_venue_regions WHERE client_id = $1 ORDER BY region_code", client_id
        )
        return [r["region_code"] for r in rows]

    async def set_partner_venue_regions(self, tx: Connection, client_id: str, regions: Sequence[str]) -> None:
        """Replace the partner's venue regions (an empty list removes them all).

        Raises:
            NotFound: ``client_id`` is not a registered client.
        """
        await tx.execute("DELETE FROM partner_venue_regions WHERE client_id = $1", client_id)
        try:
            await tx.executemany(
                "INSERT INTO partner_venue_regions (client_id, region_code) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                [(client_id, region) for region in regions],
            )
        except asyncpg.ForeignKeyViolationError:
            raise NotFound(f"no registered client {client_id!r}") from None

    async def insert_checkin(self, *, venue_id: str, pseudonym: str, repeat_s: int) -> tuple[datetime, bool]:
        """Record a check-in now, unless this pseudonym checked in at the venue in the last
        ``repeat_s`` seconds; returns ``(time, new)`` (the earlier time when not new).

        A transaction-scoped advisory lock on (venue, pseudonym) makes two simultaneous scans
        of one citizen one row (the two-key lock space never meets the one-key locks elsewhere).
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _CHECKIN_LOCK_ID, venue_id + pseudonym)
            earlier: datetime | None = await conn.fetchval(
                """SELECT checked_in_at FROM checkins
                   WHERE venue_id = $1 AND pseudonym = $2 AND checked_in_at > now() - make_interval(secs => $3)
                   ORDER BY checked_in_at DESC LIMIT 1""",
                venue_id,
                pseudonym,
                float(repeat_s),
            )
            if earlier is not None:
                return earlier, False
            at: datetime = await conn.fetchval(
                "INSERT INTO checkins (venue_id, pseudonym) VALUES ($1, $2) RETURNING checked_in_at",
                venue_id,
                pseudonym,
            )
            return at, True

    async def checkins(
        self, *, venue_id: str, start: datetime, end: datetime, limit: int, after: tuple[datetime, int] | None = None
    ) -> list[StoredCheckin]:
        """Check-ins of a venue in ``[start, end)`` ordered by ``(time, id)``, at most ``limit``,
        those after the keyset ``after`` only (the last row of the previous page). Read from the
        replica: a check-in made in the last replication lag may be missing from the answer."""
        after_at, after_id = after if after is not None else (start, 0)
        rows = await self.read_pool.fetch(
            """SELECT id, pseudonym, checked_in_at FROM checkins
               WHERE venue_id = $1 AND checked_in_at >= $2 AND checked_in_at < $3
                 AND (checked_in_at, id) > ($4, $5)
               ORDER BY checked_in_at, id LIMIT $6""",
            venue_id,
            start,
            end,
            after_at,
            after_id,
            limit,
        )
        # Up to 10,001 rows a page: built positionally (columns in field order).
        return [StoredCheckin(*row) for row in rows]

    # offline ride devices -------------------------------------------------------------------

    async def get_device(self, device_id: str) -> StoredDevice | None:
        """A registered device key."""
        row = await self.pool.fetchrow(
            """SELECT device_id, account_id::text AS account_id, public_key, revoked_at, flagged_at
               FROM transit_devices WHERE device_id = $1""",
            device_id,
        )
        return row_as(StoredDevice, row)

    async def certify_device(
        self,
        tx: Connection,
        *,
        device_id: str,
        account_id: str,
        public_key: bytes,
        not_before: datetime,
        not_after: datetime,
    ) -> None:
        """Register the device (first time) and record the certificate just issued."""
        await tx.execute(
            """INSERT INTO transit_devices (device_id, account_id, public_key, certified_at, cert_expires_at)
               VALUES ($1, $2::uuid, $3, $4, $5)
               ON CONFLICT (device_id) DO UPDATE SET certified_at = EXCLUDED.certified_at,
                   cert_expires_at = EXCLUDED.cert_expires_at""",
            device_id,
            account_id,
            public_key,
            not_before,
            not_after,
        )

    async def revoke_device(self, tx: Connection, *, device_id: str, account_id: str) -> bool:
        """The citizen retires a device key; false if it is not theirs or already revoked."""
        return bool(
            await tx.fetchval(
                """UPDATE transit_devices SET revoked_at = now()
                   WHERE device_id = $1 AND account_id = $2::uuid AND revoked_at IS NULL RETURNING true""",
                device_id,
                account_id,
            )
        )

    async def flag_devices(self, device_ids: Iterable[str]) -> list[str]:
        """Mark devices whose ride codes were replayed; returns the ones newly flagged."""
        rows = await self.pool.fetch(
            """UPDATE transit_devices SET flagged_at = now()
               WHERE device_id = ANY($1::text[]) AND flagged_at IS NULL RETURNING device_id""",
            list(device_ids),
        )
        return [r["device_id"] for r in rows]

    async def insert_ride_records(self, batch: RideBatch, *, validator_id: str, partner_id: str) -> int:
        """Store the rides of one upload; how many were new (a re-uploaded line is skipped).

        The batch travels as one JSON text parameter, unpacked by PostgreSQL: encoding seven
        arrays of a 5,000-line log value by value (timestamps above all) held the event loop
        for ~8 ms of CPU, the JSON text is one copy.
        """
        if not batch.lines:
            return 0
        inserted: int = await self.pool.fetchval(
            """WITH ins AS (
                   INSERT INTO ride_records (device_id, counter, ride_at, validator_id, scanned_at, subject, partner_id)
                   SELECT r->>0, (r->>1)::bigint, (r->>2)::bigint, $2, to_timestamp((r->>3)::float8), r->>4, $3
                   FROM jsonb_array_elements($1::text::jsonb) AS r
                   ON CONFLICT DO NOTHING RETURNING 1
               ) SELECT count(*) FROM ins""",
            batch.json,
            validator_id,
            partner_id,
        )
        return inserted

    async def replayed_rides(self, batch: RideBatch) -> list[StoredRide]:
        """Every stored record of the batch's ``(device_id, counter)`` pairs that were stored more
        than once (in the usual upload without a replay: none, so the caller has nothing to
        group on the event loop)."""
        if not batch.lines:
            return []
        rows = await self.pool.fetch(
            """SELECT device_id, counter, ride_at, validator_id, scanned_at, subject, partner_id FROM (
                   SELECT r.device_id, r.counter, r.ride_at, r.validator_id, r.scanned_at, r.subject, r.partner_id,
                          count(*) OVER (PARTITION BY r.device_id, r.counter) AS scans
                   FROM ride_records r
                   JOIN (SELECT DISTINCT e->>0 AS device_id, (e->>1)::bigint AS counter
                         FROM jsonb_array_elements($1::text::jsonb) AS e) AS k
                     ON r.device_id = k.device_id AND r.counter = k.counter
               ) AS t
               WHERE scans > 1""",
            batch.json,
        )
        # A replay of a whole log is thousands of rows: built positionally (columns in field order).
        return [StoredRide(*row) for row in rows]

    # retention ------------------------------------------------------------------------------

    async def try_retention_lock(self, tx: Connection) -> bool:
        """Take the retention job's lock for this transaction, unless another process holds it."""
        return bool(await tx.fetchval("SELECT pg_try_advisory_xact_lock($1)", RETENTION_LOCK_ID))

    async def delete_before(self, tx: Connection, table: str, cutoff: datetime, *, batch: int) -> int:
        """Delete up to ``batch`` rows of ``table`` older than ``cutoff``; returns how many."""
        column = _RETENTION_TABLES[table]  # a fixed name from our own map: never caller text
        deleted: int = await tx.fetchval(
            f"""WITH gone AS (
                    DELETE FROM {table} WHERE ctid = ANY(ARRAY(
                        SELECT ctid FROM {table} WHERE {column} < $1 LIMIT $2))
                    RETURNING 1
                ) SELECT count(*) FROM gone""",  # noqa: S608 - identifiers from _RETENTION_TABLES
            cutoff,
            batch,
        )
        return deleted

    async def delete_lapsed_overrides(self, tx: Connection, cutoff: datetime) -> int:
        """Forget overrides that ended before ``cutoff`` (they decide nothing any more)."""
        deleted: int = await tx.fetchval(
            "WITH gone AS (DELETE FROM health_overrides WHERE until < $1 RETURNING 1) SELECT count(*) FROM gone",
            cutoff,
        )
        return deleted
