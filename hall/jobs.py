"""The hall's durable job queue: pgqueuer on PostgreSQL.

Jobs are enqueued with :func:`enqueue` on the caller's connection, inside the caller's
transaction, so the job exists exactly when the change that needs it is committed. Workers
(:class:`HallWorker`, one per process that has ``ONECITY_HALL_WORKER`` on) pick jobs with
``FOR UPDATE SKIP LOCKED``, beat a heartbeat while running them, and a job whose worker died
is picked again by another once its heartbeat is older than ``heartbeat_s``.

A failed delivery is not a failed job: the handler raises :class:`RetryLater` and pgqueuer
re-queues the same row in place (``attempts`` + 1, ``execute_after`` moved by the backoff), in
one statement. An unexpected error (the database restarting, a bug) is retried the same way a
bounded number of times; after that pgqueuer keeps the job (status ``failed``) for an operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

# pgqueuer's driver adapter (AsyncpgPoolDriver) takes a raw asyncpg pool, and the worker's
# pool must not be the app's: it holds a LISTEN connection for the queue's whole life and its
# connections keep asyncpg's default codecs, which pgqueuer's own queries are written for.
import asyncpg
import msgspec
from pgqueuer.adapters.drivers.asyncpg import AsyncpgPoolDriver
from pgqueuer.adapters.persistence.qb import QueryQueueBuilder
from pgqueuer.core.qm import QueueManager
from pgqueuer.errors import RetryRequested
from pgqueuer.models import Job
from pgqueuer.queries import Queries

from core.db import Connection

if TYPE_CHECKING:
    from hall.settings import HallSettings

__all__ = ["ENTRY_BUNDLE", "ENTRY_RESUBMIT", "ENTRY_SUBMIT", "HallWorker", "JobPayload", "RetryLater", "enqueue"]

log = logging.getLogger("onecity.hall.jobs")

ENTRY_SUBMIT: Final = "hall.submit_case"
ENTRY_RESUBMIT: Final = "hall.resubmit_case"
ENTRY_BUNDLE: Final = "hall.advance_bundle"
#: pgqueuer's own enqueue statement (its query builder, its schema). It is run on our pool's
#: connection rather than through ``Queries.enqueue``, which sends ``headers`` as JSON text:
#: our pool's jsonb codec (core.db) expects Python values and would encode that text again.
_ENQUEUE: Final = QueryQueueBuilder().build_enqueue_query("raise")
#: The same, adding nothing while a job with the same ``dedupe_key`` is queued or running.
_ENQUEUE_ONCE: Final = QueryQueueBuilder().build_enqueue_query("skip")
_UNEXPECTED_RETRIES: Final = 20


class RetryLater(Exception):
    """Raised by a job handler: run this job again in ``delay_s`` seconds."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(f"retry in {delay_s:.1f}s")
        self.delay_s = delay_s


class JobPayload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a job carries: ids only (forms stay encrypted in their tables).

    Attributes:
        first_at: When the first try was enqueued (Unix seconds): the retry budget runs from it.
        n: The resubmission number (its idempotency key is ``<number>:resubmit:<n>``).
    """

    application_id: str | None = None
    bundle_id: str | None = None
    #: The message centre's jobs (messages.delivery) ride the same queue.
    message_id: int | None = None
    notice_id: str | None = None
    after: str | None = None
    first_at: float
    n: int = 0


async def enqueue(
    conn: Connection, entrypoint: str, payload: JobPayload, *, delay_s: float = 0.0, dedupe_key: str | None = None
) -> None:
    """Add a job on ``conn`` (inside its transaction, if one is open).

    With ``dedupe_key``, nothing is added while a job with that key is queued or running
    (pgqueuer's unique ``dedupe_key`` among those), so a step retried after a crash does not
    enqueue its successor twice.
    """
    await conn.fetch(
        _ENQUEUE if dedupe_key is None else _ENQUEUE_ONCE,
        [0],
        [entrypoint],
        [msgspec.json.encode(payload)],
        [dt.timedelta(seconds=delay_s)],
        [dedupe_key],
        [None],
    )


#: A job handler: the payload and how many times the job has been retried.
Handler = Callable[[JobPayload, int], Awaitable[None]]


class HallWorker:
    """Runs the hall's jobs in this process until stopped.

    Args:
        dsn: The database; the worker keeps its own small pool (it LISTENs on one connection).
        settings: Concurrency and heartbeat.
        handlers: The coroutine for each entrypoint.
    """

    def __init__(self, dsn: str, settings: HallSettings, handlers: dict[str, Handler]) -> None:
        self._dsn = dsn
        self._settings = settings
        self._handlers = handlers
        self._pool: asyncpg.Pool[Any] | None = None
        self._manager: QueueManager | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the pool and start picking jobs."""
        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4)
        manager = QueueManager(Queries(AsyncpgPoolDriver(self._pool)))
        for name, handler in self._handlers.items():
            manager.entrypoint(name, on_failure="hold")(self._wrap(name, handler))
        self._manager = manager
        concurrency = self._settings.worker_concurrency
        self._task = asyncio.create_task(
            manager.run(
                dequeue_timeout=dt.timedelta(seconds=5),
                batch_size=max(1, concurrency // 2),
                max_concurrent_tasks=max(2, concurrency // 2) * 2,
                heartbeat_timeout=dt.timedelta(seconds=self._settings.heartbeat_s),
            ),
            name="hall-worker",
        )

    @staticmethod
    def _wrap(name: str, handler: Handler) -> Callable[[Job], Awaitable[None]]:
        async def run(job: Job) -> None:
            if job.payload is None:
                return
            try:
                await handler(msgspec.json.decode(job.payload, type=JobPayload), job.attempts)
            except RetryLater as retry:
                raise RetryRequested(dt.timedelta(seconds=retry.delay_s), reason="department unavailable") from None
            except Exception as exc:
                log.exception("hall job failed", extra={"entrypoint": name, "job_id": int(job.id)})
                if job.attempts < _UNEXPECTED_RETRIES:
                    delay = dt.timedelta(seconds=min(300, 2**job.attempts))
                    raise RetryRequested(delay, reason=type(exc).__name__) from exc
                raise

        return run

    async def stop(self, *, timeout_s: float = 10.0) -> None:
        """Let running jobs finish (briefly), then close the pool."""
        if self._manager is not None:
            self._manager.shutdown.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout_s)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
        if self._pool is not None:
            await self._pool.close()

    def kill(self) -> None:
        """Stop at once, as a crash would (tests): running jobs are left ``picked``."""
        if self._task is not None:
            self._task.cancel()
        if self._pool is not None:
            self._pool.terminate()
