"""Proof: 10,000 department events, 10% duplicates and 5% out of order, over HTTP with
concurrency → exactly one history row per event_id and every application delivered."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from typing import Any

from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from services.departments.sms import SmsGateway
from services.simulators import RunningServer
from tests.integration.hall.conftest import (
    BIRTH_FORM,
    ZHANG_SAN,
    citizen,
    configure_desks,
    department_token,
    serve_hall,
    without_worker,
)

TOTAL = 10_000
DUPLICATES = TOTAL // 10  # 10%
UNIQUE = TOTAL - DUPLICATES
PATH = ("accepted", "under_review", "approved", "delivered")
APPLICATIONS = UNIQUE // len(PATH)
BATCH = 250
CONCURRENCY = 6


async def test_ten_thousand_events(
    settings: Settings, clean: None, pool: Pool, vault: Vault, simulators: dict[str, RunningServer], sms: SmsGateway
) -> None:
    # No worker: the applications' case submissions are not what is measured here.
    async with serve_hall(without_worker(settings), pool, vault, simulators) as hall:
        configure_desks(simulators, auto_progress=False)
        me = await citizen(hall.http, sms, ZHANG_SAN)
        semaphore = asyncio.Semaphore(8)

        async def submit(i: int) -> str:
            async with semaphore:
                response = await hall.http.post(
                    "/v1/me/applications",
                    json={"matter": "birth-medical-certificate", "form": BIRTH_FORM},
                    headers={**me, "Idempotency-Key": f"proof-{i}"},
                )
                assert response.status_code == 201, response.text
                return str(response.json()["number"])

        numbers = await asyncio.gather(*(submit(i) for i in range(APPLICATIONS)))
        rng = random.Random(20261201)
        t0 = dt.datetime.now(dt.UTC)
        events: list[dict[str, Any]] = []
        for n, number in enumerate(numbers):
            chain = [
                {
                    "event_id": f"{number}-{step}",
                    "application_number": number,
                    "status": status,
                    "at": (t0 + dt.timedelta(seconds=step)).isoformat(),
                }
                for step, status in enumerate(PATH)
            ]
            events.extend(chain)
            del n
        # 5% out of order: swap an event with its successor in the same application.
        swaps = 0
        while swaps < TOTAL // 20:
            i = rng.randrange(len(events) - 1)
            if events[i]["application_number"] == events[i + 1]["application_number"]:
                events[i], events[i + 1] = events[i + 1], events[i]
                swaps += 1
        # 10% duplicates: an event sent again, somewhere later.
        for _ in range(DUPLICATES):
            i = rng.randrange(len(events))
            events.insert(rng.randrange(i, len(events)) + 1, dict(events[i]))
        assert len(events) == TOTAL

        token = await department_token(hall.http, "health")
        batches = [events[i : i + BATCH] for i in range(0, TOTAL, BATCH)]
        outcomes: dict[str, int] = {}
        limit = asyncio.Semaphore(CONCURRENCY)

        async def send(batch: list[dict[str, Any]]) -> None:
            async with limit:
                response = await hall.http.post("/v1/departments/events/batch", json={"events": batch}, headers=token)
                assert response.status_code == 202, response.text
                for result in response.json()["results"]:
                    assert result["status"] == 202, result
                    outcomes[result["outcome"]] = outcomes.get(result["outcome"], 0) + 1

        started = time.monotonic()
        # Batches go out in order, CONCURRENCY at a time: neighbouring batches interleave, so
        # even more events than the 5% arrive out of order.
        await asyncio.gather(*(send(b) for b in batches))
        elapsed = time.monotonic() - started
        print(f"\n{TOTAL} events in {elapsed:.1f} s ({TOTAL / elapsed:.0f}/s), outcomes {outcomes}")

        assert outcomes["duplicate"] >= DUPLICATES
        assert sum(outcomes.values()) == TOTAL
        rows = await pool.fetchrow(
            """SELECT count(*) AS n, count(DISTINCT event_id) AS distinct_ids
               FROM hall_application_history WHERE event_id IS NOT NULL"""
        )
        assert rows["n"] == rows["distinct_ids"] == UNIQUE
        assert await pool.fetchval("SELECT count(*) FROM hall_held_events") == 0
        finals = await pool.fetch("SELECT status, count(*) AS n FROM hall_applications GROUP BY status")
        assert {r["status"]: r["n"] for r in finals} == {"delivered": APPLICATIONS}
        assert elapsed < 90  # a ceiling for a shared 2-core machine; the printed rate is the number
