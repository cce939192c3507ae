"""`onecity serve --workers 2`: one scrape of /metrics shows every worker's requests."""

from __future__ import annotations

import asyncio
import os
import re

import httpx

from core.db import Pool
from core.redis import Redis
from services.departments import DepartmentEndpoints
from tests.conftest import MASTER_KEY, reset_state
from tests.support.processes import server_process

_LIVE = re.compile(r'^onecity_requests_total\{[^}]*path="/health/live"[^}]*\} ([0-9.e+]+)$', re.MULTILINE)


def _live_total(exposition: str) -> float:
    return sum(float(value) for value in _LIVE.findall(exposition))


async def test_one_scrape_counts_the_requests_of_all_workers(
    database_url: str, redis_url: str, department_endpoints: DepartmentEndpoints, pool: Pool, redis: Redis
) -> None:
    await reset_state(pool, redis)
    departments = {name: getattr(department_endpoints, name) for name in department_endpoints.__struct_fields__}
    requests = 60
    async with server_process(
        database_url=database_url,
        redis_url=redis_url,
        master_key=MASTER_KEY,
        departments=departments,
        workers=2,
    ) as base:
        # A fresh connection per request, so the kernel spreads them over both workers.
        for _ in range(requests // 10):
            async with httpx.AsyncClient(base_url=base) as client:
                await asyncio.gather(*(client.get("/health/live", headers={"connection": "close"}) for _ in range(10)))
        async with httpx.AsyncClient(base_url=base) as client:
            # Several scrapes: whichever worker answers, each must show the same total.
            scrapes = [(await client.get("/metrics", headers={"connection": "close"})).text for _ in range(4)]
    # Every request is counted once, whichever worker served it and whichever answers the scrape.
    assert [_live_total(scrape) for scrape in scrapes] == [requests] * 4
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None  # the test process itself is untouched
