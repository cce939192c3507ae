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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from codes.repository import CodesRepository
from codes.settings import CodesSettings
from core.audit import AuditEvent, write_audit
from core.db import Connection
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
        another process holds the lock.

        Every step is its own short transaction that first takes the lock with
        ``pg_try_advisory_xact_lock``: the lock ends with the transaction, so it can never
        outlive a crashed process and works through a transaction pooler (where a session
        lock would stay on whichever server connection took it). Losing it between two steps
        means another process has taken over; this run then stops. The partitioned logs
        (scan log, check-ins) lose whole days (``DROP`` of their partitions); the rest is
        deleted in batches.
        """
        cutoffs = self.cutoffs(now)
        deleted: dict[str, int] = {}
        dropped: dict[str, list[str]] = {}
        repository = self._repository

        async def locked(work: Callable[[Connection], Awaitable[int]]) -> int | None:
            async with repository.transaction() as tx:
                if not await repository.try_retention_lock(tx):
                    return None
                return await work(tx)

        async def make_partitions(tx: Connection) -> int:
            # Every process runs this loop: the partitions of the coming days always exist.
            await maintain(tx)
            return 0

        if await locked(make_partitions) is None:
            return None
        for table, cutoff in cutoffs.items():
            if table in ("scan_log", "checkins"):

                async def drop(tx: Connection, t: str = table, c: datetime = cutoff) -> int:
                    dropped[t], count = await drop_before(tx, t, c)
                    return count

                count = await locked(drop)
                if count is None:
                    return None
                deleted[table] = count
                continue
            total = 0
            while True:

                async def delete_batch(tx: Connection, t: str = table, c: datetime = cutoff) -> int:
                    return await repository.delete_before(tx, t, c, batch=_BATCH)

                count = await locked(delete_batch)
                if count is None:
                    return None
                total += count
                if count < _BATCH:
                    break
            deleted[table] = total
        moment = now or datetime.now(UTC)

        async def finish(tx: Connection) -> int:
            lapsed = await repository.delete_lapsed_overrides(tx, moment - _OVERRIDE_KEEP)
            summary = {**deleted, "health_overrides": lapsed}
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="codes.retention",
                        outcome="success",
                        details={
                            "deleted": summary,
                            "partitions_dropped": dropped,
                            **{f"{t}_before": c.isoformat() for t, c in cutoffs.items()},
                        },
                    )
                ],
            )
            return lapsed

        lapsed = await locked(finish)
        if lapsed is None:
            return None
        deleted["health_overrides"] = lapsed
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
