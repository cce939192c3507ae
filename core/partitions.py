"""Time-partitioned logs: making partitions ahead, and retention by dropping whole partitions.

``audit_log`` is partitioned by month, ``scan_log`` and ``checkins`` by day (UTC), each with a
DEFAULT partition that takes a row whose period has no partition yet (see
``migrations/0070_partitioned_logs.sql`` for why these periods and why a default partition).
:func:`maintain` makes the current and the next periods (idempotent, under a
transaction-scoped advisory lock, so any number of processes may call it);
:func:`drop_before` removes the partitions wholly older than a cutoff and the default
partition's rows older than it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

from core.db import Connection, Pool

__all__ = [
    "AUDIT_MONTHS_AHEAD",
    "LOG_DAYS_AHEAD",
    "PARTITIONED",
    "PartitionInfo",
    "drop_before",
    "maintain",
    "partitions",
]

#: Partitioned table → its partition key.
PARTITIONED: Final = {"audit_log": "at", "scan_log": "scanned_at", "checkins": "checked_in_at"}
AUDIT_MONTHS_AHEAD: Final = 3
LOG_DAYS_AHEAD: Final = 14


class PartitionInfo(msgspec.Struct, frozen=True):
    """One partition: its table, name and range (``None`` bounds: the DEFAULT partition)."""

    parent: str
    name: str
    lower: datetime | None
    upper: datetime | None


async def maintain(conn: Connection | Pool) -> list[str]:
    """Create the partitions of the current and next periods; return the ones created."""
    rows = await conn.fetch(
        "SELECT * FROM onecity_partitions_maintain($1, $2) AS created", AUDIT_MONTHS_AHEAD, LOG_DAYS_AHEAD
    )
    return [r["created"] for r in rows]


_LIST = """
SELECT p.relname AS parent, c.relname AS name,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS lower,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS upper
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname = ANY($1::text[]) AND p.relkind = 'p'
ORDER BY p.relname, lower NULLS FIRST
"""


async def partitions(conn: Connection | Pool, parent: str | None = None) -> list[PartitionInfo]:
    """The partitions of the partitioned logs (or of ``parent``), oldest first, default first."""
    parents = [parent] if parent else list(PARTITIONED)
    return [PartitionInfo(r["parent"], r["name"], r["lower"], r["upper"]) for r in await conn.fetch(_LIST, parents)]


async def drop_before(conn: Connection, parent: str, cutoff: datetime) -> tuple[list[str], int]:
    """Drop ``parent``'s partitions that end at or before ``cutoff``; delete the default
    partition's rows older than it. Returns the partitions dropped and the rows removed.

    For ``scan_log`` and ``checkins`` only: the audit log keeps its chain anchored first
    (:class:`core.audit_chain.AuditRetention`). Run inside the caller's transaction.
    """
    column = PARTITIONED[parent]  # a fixed name from our own map: never caller text
    dropped: list[str] = []
    removed = 0
    for part in await partitions(conn, parent):
        if part.upper is not None and part.upper <= cutoff:
            removed += await conn.fetchval(f'SELECT count(*) FROM "{part.name}"')  # noqa: S608 - catalog name
            await conn.execute(f'DROP TABLE "{part.name}"')
            dropped.append(part.name)
    status = await conn.execute(
        f'DELETE FROM "{parent}_default" WHERE {column} < $1',  # noqa: S608 - identifiers from PARTITIONED
        cutoff,
    )
    return dropped, removed + int(status.split()[-1])
