"""Fixtures of the message-centre tests: the hall's BFF on a loopback port (its producers
are what fill inboxes), with short keep-alives and a small stream limit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest

from bff.settings import Settings
from tests.integration.hall.conftest import hall, staff_admin  # noqa: F401

__all__ = ["EventStream", "open_events"]


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    """The hall tests' fast retries, plus short keep-alives, two streams, pages of three."""
    fast = msgspec.structs.replace(
        settings.hall, retry_base_s=0.2, retry_max_s=1.0, heartbeat_s=2.0, worker_concurrency=16
    )
    staff = msgspec.structs.replace(settings.staff, argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1)
    messages = msgspec.structs.replace(settings.messages, keepalive_s=0.5, max_streams=2, page_size=3)
    return msgspec.structs.replace(settings, hall=fast, staff=staff, messages=messages)


@dataclass
class EventStream:
    """One open ``/v1/me/events`` stream: its parsed events arrive on ``events``."""

    response: httpx.Response
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    comments: int = 0

    async def next(self, *, kind: str | None = "message", timeout_s: float = 5.0) -> dict[str, Any]:
        """The next event (of ``kind``, skipping others), or fail after ``timeout_s``."""
        while True:
            event = await asyncio.wait_for(self.events.get(), timeout=timeout_s)
            if kind is None or event.get("event") == kind:
                return event

    async def nothing_within(self, seconds: float) -> None:
        """Assert no message event arrives within ``seconds``."""
        with contextlib.suppress(TimeoutError):
            event = await self.next(timeout_s=seconds)
            raise AssertionError(f"unexpected event {event}")


async def _read(stream: EventStream) -> None:
    current: dict[str, Any] = {}
    async for line in stream.response.aiter_lines():
        if line == "":
            if "event" in current or "data" in current:
                if "data" in current:
                    current["json"] = msgspec.json.decode(current["data"])
                await stream.events.put(current)
            current = {}
        elif line.startswith(":"):
            stream.comments += 1
        else:
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")


@contextlib.asynccontextmanager
async def open_events(
    http: httpx.AsyncClient, headers: dict[str, str], last_event_id: str | None = None
) -> AsyncIterator[EventStream]:
    """Open an event stream (asserting 200) and read it in the background."""
    extra = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    async with http.stream("GET", "/v1/me/events", headers={**headers, **extra}) as response:
        assert response.status_code == 200, await response.aread()
        stream = EventStream(response)
        reader = asyncio.create_task(_read(stream))
        # The stream's opening comment: subscribed and positioned.
        for _ in range(100):
            if stream.comments:
                break
            await asyncio.sleep(0.02)
        try:
            yield stream
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
