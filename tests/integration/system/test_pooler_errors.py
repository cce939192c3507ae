"""Errors that only a transaction pooler produces are 503 with Retry-After, never 500.

A real PgBouncer (tests/support/pgbouncer.py) in front of the test database; the BFF runs
in-process against it. Citizens log in through the ordinary app first (tokens are valid on
any app sharing the database, Redis and keys).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec
import pytest

from bff.app import create_app
from bff.settings import Settings
from services.departments.sms import SmsGateway
from tests.support.asgi import running_app
from tests.support.citizens import bearer, login
from tests.support.pgbouncer import pgbouncer, pgbouncer_binary

pytestmark = pytest.mark.skipif(pgbouncer_binary() is None, reason="pgbouncer is needed (apt-get install -y pgbouncer)")


def _through(settings: Settings, url: str, *, cache: int, pool: int) -> Settings:
    database = msgspec.structs.replace(
        settings.database, url=url, statement_cache_size=cache, pool_min=pool, pool_max=pool
    )
    return msgspec.structs.replace(settings, database=database)


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["type"].endswith("/unavailable")
    assert response.headers["retry-after"] == "2"


async def test_prepared_statements_lost_behind_the_pooler_are_503_not_500(
    settings: Settings, client: httpx.AsyncClient, sms: SmsGateway, database_url: str
) -> None:
    # The misconfiguration the setting exists for: asyncpg's statement cache left on behind a
    # transaction-mode PgBouncer. Named statements land on one server connection and are
    # executed on another ("prepared statement ... does not exist").
    headers = bearer((await login(client, sms, "13600000601"))["access_token"])
    database = urlsplit(database_url).path.lstrip("/")
    async with pgbouncer(database_url, pool_size=2) as bouncer:
        app = create_app(_through(settings, bouncer.url(database), cache=100, pool=6))
        async with running_app(app) as wrong:

            async def one() -> httpx.Response:
                return await wrong.get("/v1/me/sessions", headers=headers)

            responses: list[httpx.Response] = []
            for _ in range(5):
                responses += await asyncio.gather(*(one() for _ in range(12)))
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 503}, statuses
    assert 503 in statuses  # the failure really happened, and was answered as "retry"
    for response in responses:
        if response.status_code == 503:
            _assert_unavailable(response)


async def test_with_the_cache_off_the_same_load_is_all_200(
    settings: Settings, client: httpx.AsyncClient, sms: SmsGateway, database_url: str
) -> None:
    headers = bearer((await login(client, sms, "13600000602"))["access_token"])
    database = urlsplit(database_url).path.lstrip("/")
    async with pgbouncer(database_url, pool_size=2) as bouncer:
        app = create_app(_through(settings, bouncer.url(database), cache=0, pool=6))
        async with running_app(app) as right:
            responses: list[httpx.Response] = []
            for _ in range(5):
                responses += await asyncio.gather(*(right.get("/v1/me/sessions", headers=headers) for _ in range(12)))
    assert {r.status_code for r in responses} == {200}


async def test_query_wait_timeout_is_503(
    settings: Settings, client: httpx.AsyncClient, sms: SmsGateway, database_url: str
) -> None:
    headers = bearer((await login(client, sms, "13600000603"))["access_token"])
    database = urlsplit(database_url).path.lstrip("/")
    async with pgbouncer(database_url, pool_size=1, query_wait_timeout_s=1) as bouncer:
        app = create_app(_through(settings, bouncer.url(database), cache=0, pool=2))
        async with running_app(app) as bff:
            # Warm the pool while the only server connection is free.
            assert (await bff.get("/v1/me/sessions", headers=headers)).status_code == 200
            # Someone else holds PgBouncer's only server connection in a long transaction.
            hog = await asyncpg.connect(bouncer.url(database), statement_cache_size=0)
            try:
                busy: Any = asyncio.create_task(hog.execute("BEGIN; SELECT pg_sleep(3); COMMIT"))
                await asyncio.sleep(0.2)
                _assert_unavailable(await bff.get("/v1/me/sessions", headers=headers))
                await busy
            finally:
                await hog.close()
            # Once the server connection is free again the pool recovers by itself.
            for _ in range(20):
                response = await bff.get("/v1/me/sessions", headers=headers)
                if response.status_code == 200:
                    break
                await asyncio.sleep(0.2)
            assert response.status_code == 200
