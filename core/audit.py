"""Writing the append-only audit log.

Security events (logins, refreshes, level changes) are written in the same transaction as
the change they describe, through :func:`write_audit`. High-volume reads (department data
access, code scans) go through :class:`AuditBatcher`, which groups rows into one ``COPY``
per flush so auditing every read costs little.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from core.db import Connection, Pool
from core.structs import Response

__all__ = ["AuditBatcher", "AuditEvent", "write_audit"]

log = logging.getLogger("onecity.audit")

_COLUMNS = ("at", "actor_type", "actor_id", "subject_id", "action", "outcome", "client_ip", "details")


class AuditEvent(Response, frozen=True, kw_only=True):
    """One audit row. ``details`` must hold no secret and no clear PII."""

    action: str
    outcome: str
    actor_type: str = "system"
    actor_id: str | None = None
    subject_id: str | None = None
    client_ip: str | None = None
    details: Mapping[str, Any] = {}
    at: datetime | None = None

    def row(self) -> tuple[Any, ...]:
        """The values in ``_COLUMNS`` order."""
        return (
            self.at or datetime.now(UTC),
            self.actor_type,
            self.actor_id,
            self.subject_id,
            self.action,
            self.outcome,
            self.client_ip,
            dict(self.details),
        )


async def write_audit(conn: Connection | Pool, events: Iterable[AuditEvent]) -> None:
    """Insert ``events`` now (inside the caller's transaction when given a connection)."""
    rows = [e.row() for e in events]
    if rows:
        await conn.executemany(
            f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",  # noqa: S608
            rows,
        )


class AuditBatcher:
    """Buffers audit events and writes them in batches from one background task.

    Durability trade-off, written down: an event is in PostgreSQL at most ``interval_s``
    after :meth:`add`; a process killed in between loses the events of that window. That is
    acceptable for read-access records; anything that must be durable before the response
    uses :func:`write_audit` instead.

    Args:
        pool: The asyncpg pool.
        interval_s: Longest an event waits before its batch is written.
        max_batch: Flush early once this many events are waiting.
    """

    def __init__(self, pool: Pool, *, interval_s: float = 0.2, max_batch: int = 500) -> None:
        self._pool = pool
        self._interval = interval_s
        self._max_batch = max_batch
        self._buffer: list[AuditEvent] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, event: AuditEvent) -> None:
        """Queue ``event``; never blocks and never raises."""
        self._buffer.append(event)
        if len(self._buffer) >= self._max_batch:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything queued so far."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            async with self._pool.acquire() as conn:
                await conn.copy_records_to_table("audit_log", records=[e.row() for e in batch], columns=_COLUMNS)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Keep the events for the next attempt rather than dropping them; cap the backlog
            # so a long outage cannot exhaust memory.
            self._buffer = (batch + self._buffer)[-50_000:]
            log.warning("audit batch not written, will retry", extra={"error": exc.__class__.__name__})

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            await self.flush()

    def start(self) -> None:
        """Start the background writer."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-batcher")

    async def stop(self) -> None:
        """Stop the writer and write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
