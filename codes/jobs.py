"""Retention: scan log, check-ins and ride records are deleted after their retention period.

``scan_log`` and ``checkins`` are partitioned by day (``core.partitions``): their retention
drops whole days once the *end* of the day is past the cutoff (so a row is kept up to one day
longer than its retention period, never less), and each run first makes the partitions of the
coming days. Ride records are deleted in small batches (short transactions, no long lock on a table that is being
appended to) and runs in one process at a time, under a PostgreSQL advisory lock. Every process
may run the loop (:meth:`RetentionJob.run_forever`); whoever holds the lock does the work, the
others skip that turn. ``onecity codes retention`` runs it once, for cron.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from codes.repository import RETENTION_LOCK_ID, CodesRepository
from codes.settings import CodesSettings
from core.audit import AuditEvent, write_audit
from core.partitions import drop_before, maintain

__all__ = ["RetentionJob"]

log = logging.getLogger("onecity.codes.retention")

_BATCH = 5_000
_OVERRIDE_KEEP = timedelta(days=30)  # a lapsed override is kept a while for the officers' view


class RetentionJob:
    """Deletes what is past its retention.

    Args:
        repository: SQL.
        settings: Retention periods and the loop interval.
    """

    def __init__(self, repository: CodesRepository, settings: CodesSettings) -> None:
        self._repository = repository
        self._settings = settings

    def cutoffs(self, now: datetime | None = None) -> dict[str, datetime]:
        """Per table, the time before which rows are deleted."""
        moment = now or datetime.now(UTC)
        return {
            "scan_log": moment - timedelta(days=self._settings.scan_retention_days),
            "checkins": moment - timedelta(days=self._settings.checkin_retention_days),
            "ride_records": moment - timedelta(days=self._settings.ride_retention_days),
        }

    async def run_once(self, now: datetime | None = None) -> dict[str, int] | None:
        """Delete everything past retention; returns rows deleted per table, or ``None`` when
        another process holds the lock."""
        cutoffs = self.cutoffs(now)
        deleted: dict[str, int] = {}
        async with self._repository.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK_ID):
                return None
            try:
                # Every process runs this loop: the partitions of the coming days always exist.
                async with conn.transaction():
                    await maintain(conn)
                dropped: dict[str, list[str]] = {}
                for table, cutoff in cutoffs.items():
                    if table in ("scan_log", "checkins"):
                        async with conn.transaction():
                            dropped[table], deleted[table] = await drop_before(conn, table, cutoff)
                        continue
                    total = 0
                    while True:
                        count = await CodesRepository.delete_before(conn, table, cutoff, batch=_BATCH)
                        total += count
                        if count < _BATCH:
                            break
                    deleted[table] = total
                moment = now or datetime.now(UTC)
                deleted["health_overrides"] = await CodesRepository.delete_lapsed_overrides(
                    conn, moment - _OVERRIDE_KEEP
                )
                await write_audit(
                    conn,
                    [
                        AuditEvent(
                            action="codes.retention",
                            outcome="success",
                            details={
                                "deleted": deleted,
                                "partitions_dropped": dropped,
                                **{f"{t}_before": c.isoformat() for t, c in cutoffs.items()},
                            },
                        )
                    ],
                )
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_ID)
        return deleted

    async def run_forever(self) -> None:
        """Run every ``retention_interval_s`` (first run after one interval); errors wait for
        the next turn."""
        interval = self._settings.retention_interval_s
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                result = await self.run_once()
            except Exception as exc:
                log.warning("codes retention failed, will retry", extra={"error": exc.__class__.__name__})
                continue
            if result:
                log.info("codes retention done", extra={"deleted": result})
