"""Deadlines: remaining time, per-call caps, and the implicit scope tasks inherit."""

from __future__ import annotations

import asyncio

import pytest

from services.resilience import Deadline, current_deadline, deadline_scope
from tests.unit.services.resilience.conftest import FakeClock


def test_remaining_and_capped(clock: FakeClock) -> None:
    deadline = Deadline.after(0.8, clock=clock)
    assert deadline.remaining() == pytest.approx(0.8)
    assert deadline.capped(0.5) == pytest.approx(0.5), "a per-call timeout shorter than what is left stays"
    clock.advance(0.6)
    assert deadline.capped(0.5) == pytest.approx(0.2), "but never outlives the deadline"
    clock.advance(1.0)
    assert deadline.remaining() == 0.0
    assert deadline.expired


def test_earliest(clock: FakeClock) -> None:
    soon, late = Deadline.after(1, clock=clock), Deadline.after(5, clock=clock)
    assert soon.earliest(late) is soon
    assert late.earliest(soon) is soon
    assert late.earliest(None) is late


async def test_scope_nests_to_the_earliest_and_reaches_tasks() -> None:
    assert current_deadline() is None
    outer = Deadline.after(1.0)
    with deadline_scope(outer):
        assert current_deadline() is outer
        with deadline_scope(Deadline.after(10.0)) as inner:
            assert inner is outer, "an inner scope cannot extend the outer deadline"

        async def seen() -> Deadline | None:
            return current_deadline()

        assert await asyncio.create_task(seen()) is outer, "tasks inherit the deadline"
    assert current_deadline() is None
