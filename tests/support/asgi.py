"""Running the BFF in the test's own event loop: ASGI lifespan plus an httpx client.

Litestar's ``AsyncTestClient`` runs the app in a separate thread and blocks the caller's
loop while a request is in flight; the department simulators live in the test's loop, so
the app could never reach them. This runs the app's lifespan here instead and talks to it
through ``httpx.ASGITransport``: one loop, real sockets to the simulators.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from litestar import Litestar

__all__ = ["LifespanError", "running_app"]


class LifespanError(RuntimeError):
    """The app's start-up failed; ``__cause__`` is what it raised."""


@contextlib.asynccontextmanager
async def running_app(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Start ``app`` (lifespan), yield a client for it, shut it down afterwards."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive() -> dict[str, Any]:
        return await to_app.get()

    async def send(message: dict[str, Any]) -> None:
        await from_app.put(message)

    failure: list[BaseException] = []

    async def run() -> None:
        try:
            await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)  # type: ignore[arg-type]
        except BaseException as exc:
            failure.append(exc)
            await from_app.put({"type": "lifespan.startup.failed", "message": repr(exc)})

    task = asyncio.create_task(run())
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    if started["type"] != "lifespan.startup.complete":
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise LifespanError(started.get("message", "start-up failed")) from (failure[0] if failure else None)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),  # type: ignore[arg-type]
            base_url="http://testserver.local",
        ) as client:
            yield client
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(from_app.get(), timeout=10)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, timeout=10)
