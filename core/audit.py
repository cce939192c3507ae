"""Writing the append-only audit log.

Security events (logins, refreshes, revocations, level changes, overrides) are written in the
same transaction as the change they describe, through :func:`write_audit`. High-volume reads
(department data access, code scans) go through :class:`AuditBatcher`, which groups rows into
one ``COPY`` per flush so auditing every read costs little.

A batch writer must never let one bad row hold up the others: :func:`write_isolating` writes a
batch, and on a *data* error (a NUL byte, an invalid value: the row's fault) bisects it until
the bad row is alone, writes the rest and hands the bad row to :func:`quarantine`
(``write_quarantine`` table, ``onecity_write_quarantined`` counter, one error log line without
the row's content). Any other error (the database is down) interrupts the write with the rows
still unwritten, so the caller can back off and retry them. The scan log (``codes.scanlog``)
uses the same two functions.

Every row is hash-chained by a trigger (``migrations/0040_audit_integrity.sql``); see
:mod:`core.audit_chain` for verification and retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import asyncpg
import msgspec
from prometheus_client import Counter, Gauge

from core.db import Connection, Pool
from core.errors import DependencyUnavailable
from core.structs import FrozenStruct

__all__ = [
    "QUARANTINED",
    "SHED",
    "WRITE_FAILURES",
    "AuditBatcher",
    "AuditEvent",
    "Backoff",
    "WriteInterrupted",
    "is_row_error",
    "quarantine",
    "write_audit",
    "write_isolating",
]

log = logging.getLogger("onecity.audit")

_R = TypeVar("_R")

# Labels are table names and fixed reasons: never a value from a row.
QUARANTINED: Final = Counter(
    "onecity_write_quarantined",
    "Rows a batch writer could not store (a data error in that row), kept in write_quarantine",
    ["target"],
)
SHED: Final = Counter(
    "onecity_write_shed",
    "Rows a batch writer had to give up (queue full, or database down at shutdown)",
    ["target", "reason"],
)
WRITE_FAILURES: Final = Counter(
    "onecity_write_batch_failures",
    "Batch writes interrupted by a database error (not the rows' fault); retried after a backoff",
    ["target"],
)
# Each worker has its own queue: the depth across workers is the sum over live ones.
AUDIT_QUEUE: Final = Gauge(
    "onecity_audit_queue_depth", "Audit events waiting for the batch writer", multiprocess_mode="livesum"
)

_COLUMNS = ("at", "actor_type", "actor_id", "subject_id", "action", "outcome", "client_ip", "details")


class AuditEvent(FrozenStruct, frozen=True, kw_only=True):
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


def is_row_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the fault of the data written (retrying the same row cannot help).

    PostgreSQL classes 22 (data exception: a NUL byte, an invalid encoding, a value out of
    range) and 23 (integrity constraint), and the client-side encoding errors (asyncpg's
    ``DataError`` is a ``ValueError``; a surrogate in a ``str``; an unencodable ``details``).
    Anything else (connection lost, server shutting down, timeouts) is an outage.
    """
    return isinstance(
        exc,
        asyncpg.DataError | asyncpg.IntegrityConstraintViolationError | ValueError | TypeError | msgspec.EncodeError,
    )


class WriteInterrupted(DependencyUnavailable):
    """An outage stopped a batch write; ``unwritten`` are the rows not stored, in order."""

    def __init__(self, unwritten: list[Any], cause: BaseException) -> None:
        super().__init__(cause.__class__.__name__)
        self.unwritten = unwritten
        self.cause = cause


async def write_isolating(
    rows: Sequence[_R],
    write: Callable[[Sequence[_R]], Awaitable[None]],
    *,
    on_written: Callable[[Sequence[_R]], None],
    on_bad: Callable[[_R, BaseException], Awaitable[None]],
) -> None:
    """Write ``rows`` with ``write`` (one transaction per call), isolating bad rows.

    A data error splits the failing chunk in halves, each written on its own, down to the
    single bad row, which goes to ``on_bad`` (that is ~2·log2(n) extra statements per bad row;
    the good rows of a batch are never held back by it). Rows are written in their order.

    Raises:
        WriteInterrupted: a non-data error (outage); carries every row not yet written.
    """
    pending: list[list[_R]] = [list(rows)] if rows else []
    while pending:
        chunk = pending.pop(0)
        try:
            await write(chunk)
        except Exception as exc:
            if not is_row_error(exc):
                raise WriteInterrupted([row for part in (chunk, *pending) for row in part], exc) from exc
            if len(chunk) > 1:
                middle = len(chunk) // 2
                pending[0:0] = [chunk[:middle], chunk[middle:]]
                continue
            try:
                await on_bad(chunk[0], exc)
            except Exception as failure:
                raise WriteInterrupted([row for part in (chunk, *pending) for row in part], failure) from failure
            continue
        on_written(chunk)


def _raw(columns: Sequence[str], row: Sequence[Any]) -> bytes:
    """The row as JSON bytes: NUL bytes survive as ``\\u0000``; never fails."""
    try:
        return msgspec.json.encode(dict(zip(columns, row, strict=False)), enc_hook=repr)
    except Exception:  # a surrogate in a str, a type repr cannot help with: keep a lossless repr
        return repr(tuple(row)).encode("utf-8", "backslashreplace")


async def quarantine(
    conn: Connection | Pool, target: str, columns: Sequence[str], row: Sequence[Any], exc: BaseException
) -> int:
    """Keep a row that could not be written in ``write_quarantine``; returns its id.

    Counts it in ``onecity_write_quarantined{target}`` and logs one error line with the error
    class and the quarantine id, never the row (it may carry personal data or the bad bytes).
    """
    sqlstate = getattr(exc, "sqlstate", None)
    quarantine_id: int = await conn.fetchval(
        "INSERT INTO write_quarantine (target, error_class, sqlstate, raw) VALUES ($1, $2, $3, $4) RETURNING id",
        target,
        exc.__class__.__name__,
        sqlstate if isinstance(sqlstate, str) else None,
        _raw(columns, row),
    )
    QUARANTINED.labels(target).inc()
    log.error(
        "row quarantined: it could not be written",
        extra={"target": target, "error": exc.__class__.__name__, "sqlstate": sqlstate, "quarantine_id": quarantine_id},
    )
    return quarantine_id


class Backoff:
    """Exponential backoff with a cap and jitter, for a writer whose database is down.

    Args:
        base_s: The first delay.
        cap_s: The longest delay.
    """

    def __init__(self, base_s: float, cap_s: float) -> None:
        self._base = base_s
        self._cap = cap_s
        self.failures = 0

    def next_delay(self) -> float:
        """Count a failure; the delay before the next attempt (full delay at most ``cap_s``)."""
        self.failures += 1
        delay: float = min(self._cap, self._base * 2.0 ** min(self.failures - 1, 30))
        return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret

    def reset(self) -> None:
        """A write succeeded."""
        self.failures = 0


class AuditBatcher:
    """Buffers audit events and writes them in batches from one background task.

    Durability trade-off, written down: an event is in PostgreSQL at most ``interval_s``
    after :meth:`add` while the database is up; a process killed in between loses the events
    of that window. That is acceptable for read-access records; anything that must be durable
    before the response (security events) uses :func:`write_audit` instead.

    Robustness: a row with a data error is quarantined and the rest of its batch written
    (:func:`write_isolating`); an outage keeps the events and retries after an exponential
    backoff (``backoff_s`` doubling up to ``backoff_cap_s``), never a hot loop; the queue is
    bounded (``max_queue``): beyond it new events are shed, counted in
    ``onecity_write_shed{target="audit_log",reason="queue_full"}`` and logged as an error.
    :meth:`stop` writes what is left (retrying for up to ``stop_timeout_s``); what it still
    cannot write is counted (``reason="shutdown"``) and logged.

    Args:
        pool: The asyncpg pool.
        interval_s: Longest an event waits before its batch is written.
        max_batch: Flush early once this many events are waiting; also the most rows per ``COPY``.
        max_queue: Most events kept while the database is unreachable.
        backoff_s: First delay after a failed write.
        backoff_cap_s: Longest delay between attempts.
        stop_timeout_s: How long :meth:`stop` keeps trying to write the rest.
    """

    def __init__(
        self,
        pool: Pool,
        *,
        interval_s: float = 0.2,
        max_batch: int = 500,
        max_queue: int = 50_000,
        backoff_s: float = 0.2,
        backoff_cap_s: float = 30.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self._pool = pool
        self._interval = interval_s
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._backoff = Backoff(backoff_s, backoff_cap_s)
        self._stop_timeout = stop_timeout_s
        # Rows, not events: the time is taken when the event is added, not when it is written.
        self._buffer: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._shed_unlogged = 0
        #: Rows written, quarantined and shed by this batcher (observability and tests).
        self.written = 0
        self.quarantined = 0
        self.shed = 0

    def add(self, event: AuditEvent) -> None:
        """Queue ``event``; never blocks and never raises (sheds, counted, when full)."""
        if len(self._buffer) >= self._max_queue:
            self.shed += 1
            self._shed_unlogged += 1
            SHED.labels("audit_log", "queue_full").inc()
            if self._shed_unlogged == 1:  # one line per episode, not one per event
                log.error("audit queue full: events are being shed", extra={"max_queue": self._max_queue})
            return
        self._buffer.append(event.row())
        AUDIT_QUEUE.set(len(self._buffer))
        if len(self._buffer) >= self._max_batch and not self._backoff.failures:
            self._wake.set()  # flush early, but never cut a backoff short

    async def write_now(self, *events: AuditEvent) -> None:
        """Write ``events`` at once, durable before this returns (raises if they cannot be).

        For a security event whose change has no PostgreSQL transaction to join (a revocation
        kept in Redis): it must not wait in the queue, where a crash would lose it.
        """
        await write_audit(self._pool, events)

    async def _copy(self, rows: Sequence[tuple[Any, ...]]) -> None:
        async with self._pool.acquire() as conn:
            await conn.copy_records_to_table("audit_log", records=rows, columns=_COLUMNS)

    async def _quarantine(self, row: tuple[Any, ...], exc: BaseException) -> None:
        await quarantine(self._pool, "audit_log", _COLUMNS, row, exc)
        self.quarantined += 1

    def _written(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.written += len(rows)

    async def flush(self) -> bool:
        """Write everything queued so far; ``False`` when an outage interrupted it (the
        unwritten events are queued again, ahead of newer ones)."""
        while self._buffer:
            batch, self._buffer = self._buffer[: self._max_batch], self._buffer[self._max_batch :]
            try:
                await write_isolating(batch, self._copy, on_written=self._written, on_bad=self._quarantine)
            except WriteInterrupted as exc:
                WRITE_FAILURES.labels("audit_log").inc()
                self._buffer = exc.unwritten + self._buffer
                if len(self._buffer) > self._max_queue:
                    # Keep the oldest (the backlog), shed the newest, and say so.
                    excess = len(self._buffer) - self._max_queue
                    self._buffer = self._buffer[: self._max_queue]
                    self.shed += excess
                    SHED.labels("audit_log", "queue_full").inc(excess)
                    log.error("audit queue full: events are being shed", extra={"shed": excess})
                log.warning(
                    "audit batch not written, will retry",
                    extra={"error": exc.cause.__class__.__name__, "queued": len(self._buffer)},
                )
                AUDIT_QUEUE.set(len(self._buffer))
                return False
            finally:
                AUDIT_QUEUE.set(len(self._buffer))
        if self._shed_unlogged:
            log.error("audit events were shed while the queue was full", extra={"shed": self._shed_unlogged})
            self._shed_unlogged = 0
        return True

    async def _run(self) -> None:
        delay = self._interval
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            if self._stopping:
                return
            if await self.flush():
                self._backoff.reset()
                delay = self._interval
            else:
                delay = self._backoff.next_delay()

    def start(self) -> None:
        """Start the background writer."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="audit-batcher")

    async def stop(self) -> None:
        """Stop the writer and write what is left (retrying up to ``stop_timeout_s``).

        The writer is asked to stop, not cancelled: a ``COPY`` in flight finishes (cancelling
        it would lose its rows, or write them twice if they were committed).
        """
        loop = asyncio.get_running_loop()
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=self._stop_timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

        deadline = loop.time() + self._stop_timeout
        backoff = Backoff(0.05, 1.0)
        while not await self.flush():
            delay = backoff.next_delay()
            if loop.time() + delay > deadline:
                break
            await asyncio.sleep(delay)
        if self._buffer:
            lost = len(self._buffer)
            self._buffer = []
            self.shed += lost
            SHED.labels("audit_log", "shutdown").inc(lost)
            AUDIT_QUEUE.set(0)
            log.error("audit events lost at shutdown: the database stayed unreachable", extra={"lost": lost})
