"""Request coalescing: one task per key at a time, shared by every caller."""

from __future__ import annotations

import asyncio

import pytest

from services.resilience import Coalescer


async def test_concurrent_callers_share_one_call() -> None:
    coalescer: Coalescer[int] = Coalescer()
    calls = 0
    release = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    tasks = [coalescer.run("k", work) for _ in range(10)]
    assert [joined for _, joined in tasks] == [False] + [True] * 9
    assert len({id(task) for task, _ in tasks}) == 1
    release.set()
    assert await tasks[0][0] == 42
    assert calls == 1
    assert len(coalescer) == 0, "finished work leaves the table"
    task, joined = coalescer.run("k", work)
    assert not joined
    assert await task == 42
    assert calls == 2


async def test_distinct_keys_do_not_share() -> None:
    coalescer: Coalescer[str] = Coalescer()

    async def work(value: str) -> str:
        await asyncio.sleep(0)
        return value

    a, _ = coalescer.run("a", lambda: work("a"))
    b, _ = coalescer.run("b", lambda: work("b"))
    assert (await a, await b) == ("a", "b")


async def test_failure_reaches_every_waiter_and_is_not_logged_as_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    coalescer: Coalescer[int] = Coalescer()

    async def work() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("upstream")

    first, _ = coalescer.run("k", work)
    second, _ = coalescer.run("k", work)
    for task in (first, second):
        with pytest.raises(RuntimeError):
            await task
    orphan, _ = coalescer.run("other", work)  # nobody awaits this one
    await asyncio.wait({orphan})
    del orphan
    assert "never retrieved" not in caplog.text


async def test_cancel_all() -> None:
    coalescer: Coalescer[None] = Coalescer()
    task, _ = coalescer.run("k", lambda: asyncio.sleep(10))
    await coalescer.cancel_all()
    assert task.cancelled()
    assert len(coalescer) == 0
