"""The scan log with group commit: durable before the answer, without one INSERT per scan.

Every online verification appends a row and waits until that row is committed in PostgreSQL;
only then does the partner get its answer, so an acknowledged scan survives a crash of the
worker right after. Rows arriving while an ``INSERT`` is in flight wait for the next one, which
then carries all of them: at low load each scan is written at once (no timer, no added latency);
under load the batches grow by themselves and many verifications share one ``INSERT`` and one
commit. At most ``max_batch`` rows go in one statement.

One bad row never fails its neighbours: a data error (a NUL byte in a venue id) bisects the
batch (:func:`core.audit.write_isolating`), the other rows are written and answered, and the
bad row goes to ``write_quarantine`` (a durable record of the scan, so its caller is answered
too). An outage fails the rows of that batch (503, the partner retries) and the next attempt
waits an exponential backoff, capped at ``backoff_cap_s``: no hot loop against a database that
is down. At most ``max_queue`` rows wait; beyond that a write is refused at once (503),
counted in ``onecity_write_shed{target="scan_log"}`` and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from codes.repository import CodesRepository
from core.audit import SHED, WRITE_FAILURES, Backoff, WriteInterrupted, write_isolating
from core.errors import DependencyUnavailable

__all__ = ["ScanLog"]

log = logging.getLogger("onecity.codes.scanlog")


class ScanLog:
    """Group-committed writer of ``scan_log`` rows.

    Args:
        repository: Writes a batch in one statement.
        max_batch: Largest batch.
        max_queue: Most rows waiting; beyond it a write is refused at once.
        backoff_s: First delay after an outage.
        backoff_cap_s: Longest delay between attempts.
    """

    def __init__(
        self,
        repository: CodesRepository,
        *,
        max_batch: int,
        max_queue: int = 20_000,
        backoff_s: float = 0.05,
        backoff_cap_s: float = 1.0,
    ) -> None:
        self._repository = repository
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._backoff = Backoff(backoff_s, backoff_cap_s)
        self._retry_at = 0.0
        self._waiting: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: Batches and rows written (observability and tests: rows / batches is the grouping).
        self.batches = 0
        self.rows = 0
        self.quarantined = 0

    async def write(self, row: Sequence[Any]) -> None:
        """Append one row and return once it is committed.

        Raises:
            DependencyUnavailable: the batch could not be written (the caller must not answer
                as if the scan were logged).
        """
        if len(self._waiting) >= self._max_queue:
            SHED.labels("scan_log", "queue_full").inc()
            log.error("scan log queue full: scan refused", extra={"max_queue": self._max_queue})
            raise DependencyUnavailable("The scan could not be logged; retry shortly")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((tuple(row), future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="scan-log-writer")
        # A caller that goes away (client disconnect) cancels only this future: its row is
        # already queued and the writer task, not the caller, does the write.
        await future

    async def _insert(self, chunk: Sequence[tuple[tuple[Any, ...], asyncio.Future[None]]]) -> None:
        await self._repository.insert_scans([row for row, _ in chunk])

    def _written(self, chunk: Sequence[tuple[tuple[Any, ...], asyncio.Future[None]]]) -> None:
        self.batches += 1
        self.rows += len(chunk)
        for _, future in chunk:
            if not future.done():
                future.set_result(None)

    async def _quarantine(self, item: tuple[tuple[Any, ...], asyncio.Future[None]], exc: BaseException) -> None:
        row, future = item
        await self._repository.quarantine_scan(row, exc)
        self.quarantined += 1
        if not future.done():
            future.set_result(None)  # durably recorded, in the quarantine

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            # After an outage, wait out the backoff; rows arriving meanwhile join this batch.
            delay = self._retry_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            try:
                await write_isolating(batch, self._insert, on_written=self._written, on_bad=self._quarantine)
            except WriteInterrupted as exc:
                WRITE_FAILURES.labels("scan_log").inc()
                self._retry_at = loop.time() + self._backoff.next_delay()
                log.warning(
                    "scan log batch not written", extra={"error": exc.cause.__class__.__name__, "rows": len(batch)}
                )
                for _, future in exc.unwritten:
                    if not future.done():
                        future.set_exception(DependencyUnavailable("The scan could not be logged; retry shortly"))
                continue
            self._backoff.reset()
            self._retry_at = 0.0

    async def close(self) -> None:
        """Wait for the writes in flight (shutdown)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
