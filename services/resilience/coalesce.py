"""Request coalescing ("single flight"): concurrent identical reads share one upstream call.

The first caller for a key starts the work as a task; callers arriving while it runs get the
same task. Callers wait on it with their own timeout and never cancel it (it is shared), so
the task must bound itself (the fan-out gives it the first caller's deadline).

Why not a library: this is a dict of tasks; nothing on PyPI that is maintained does less.
Per process only: with W workers a burst costs at most W upstream calls, which is fine for
reads (a Redis lock would add a round trip to every read to save a few calls).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Runs at most one task per key at a time."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def run(
        self, key: Hashable, work: Callable[[], Awaitable[T]], *, name: str = "coalesced"
    ) -> tuple[asyncio.Task[T], bool]:
        """The task for ``key``, starting ``work()`` if none is running.

        Returns:
            The task and whether it was already running (the caller joined it).
        """
        task = self._running.get(key)
        if task is not None:
            return task, True

        async def wrapped() -> T:
            return await work()

        task = asyncio.create_task(wrapped(), name=name)
        self._running[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return task, False

    def _finished(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        # Mark the outcome as retrieved: when every waiter timed out, nobody else reads it, and
        # asyncio would log "exception was never retrieved" for an expected upstream failure.
        if not task.cancelled():
            task.exception()

    async def cancel_all(self) -> None:
        """Cancel every running task and wait for them (shutdown)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
