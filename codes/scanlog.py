"""The scan log with group commit: durable before the answer, without one INSERT per scan.

Every online verification appends a row and waits until that row is committed in PostgreSQL;
only then does the partner get its answer, so an acknowledged scan survives a crash of the
worker right after. Rows arriving while an ``INSERT`` is in flight wait for the next one, which
then carries all of them: at low load each scan is written at once (no timer, no added latency);
under load the batches grow by themselves and many verifications share one ``INSERT`` and one
commit. At most ``max_batch`` rows go in one statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from codes.repository import CodesRepository
from core.errors import DependencyUnavailable

__all__ = ["ScanLog"]

log = logging.getLogger("onecity.codes.scanlog")


class ScanLog:
    """Group-committed writer of ``scan_log`` rows.

    Args:
        repository: Writes a batch in one statement.
        max_batch: Largest batch.
    """

    def __init__(self, repository: CodesRepository, *, max_batch: int) -> None:
        self._repository = repository
        self._max_batch = max_batch
        self._waiting: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: Batches and rows written (observability and tests: rows / batches is the grouping).
        self.batches = 0
        self.rows = 0

    async def write(self, row: Sequence[Any]) -> None:
        """Append one row and return once it is committed.

        Raises:
            DependencyUnavailable: the batch could not be written (the caller must not answer
                as if the scan were logged).
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((tuple(row), future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="scan-log-writer")
        # A caller that goes away (client disconnect) cancels only this future: its row is
        # already queued and the writer task, not the caller, does the write.
        await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            try:
                await self._repository.insert_scans([row for row, _ in batch])
            except Exception as exc:
                log.warning("scan log batch not written", extra={"error": exc.__class__.__name__, "rows": len(batch)})
                for _, future in batch:
                    if not future.done():
                        future.set_exception(DependencyUnavailable("The scan could not be logged; retry shortly"))
                continue
            self.batches += 1
            self.rows += len(batch)
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def close(self) -> None:
        """Wait for the writes in flight (shutdown)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
