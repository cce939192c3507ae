"""The screens when every department is well, and the citizen's own errors."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from codes.status import SharedReads
from core.crypto import Vault
from core.db import Pool
from identity import Principal
from identity.seed import DEMO_CITIZENS
from services.departments.sms import SmsGateway
from tests.integration.bff.screens.conftest import FAST, MARGIN_S, AppFactory, Sim
from tests.support.citizens import bearer, login

SignIn = Callable[..., Awaitable[dict[str, str]]]
SINGLE = (
    "/v1/me/health/records",
    "/v1/me/transport/card",
    "/v1/me/transport/trips",
    "/v1/me/socsec/card",
    "/v1/me/socsec/contributions?year=2024",
)


async def test_home_with_every_department_up(make_app: AppFactory, citizen: SignIn, sim: Sim) -> None:
    async with make_app(FAST) as (_, client):
        response = await client.get("/v1/me/home", headers=await citizen(client))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"sections", "codes", "codes_state"}
    assert (body["codes"], body["codes_state"]) == ([], "ready"), "no codes, and that is the answer"
    sections = body["sections"]
    assert set(sections) == {"health", "transport", "socsec"}
    for section in sections.values():
        assert section["state"] == "ok"
        assert section["as_of"].endswith("Z")
    assert sections["health"]["data"]["latest_test"]["result"] == "negative"  # 张三, DESIGN demo data
    assert sections["transport"]["data"]["card_no_masked"].startswith("****")
    assert set(sections["socsec"]["data"]) == {"card_no_masked", "status", "issued_city", "medical_balance_cents"}
    _, _, id_number = DEMO_CITIZENS[0]
    assert id_number not in response.text


async def test_single_department_screens(make_app: AppFactory, citizen: SignIn, sim: Sim) -> None:
    async with make_app(FAST) as (_, client):
        headers = await citizen(client)
        bodies = {path: await client.get(path, headers=headers) for path in SINGLE}
        trips = await client.get("/v1/me/transport/trips?days=7", headers=headers)
    for path, response in bodies.items():
        assert response.status_code == 200, path
        assert response.json()["state"] == "ok", path
    health = bodies["/v1/me/health/records"].json()["data"]
    assert set(health) == {"tests", "vaccinations", "risk"}
    assert bodies["/v1/me/socsec/contributions?year=2024"].json()["data"]["year"] == 2024
    assert trips.json()["data"]["since"].endswith("T00:00:00Z")
    assert await sim.count("transport", "GET /v1/me/trips") == 2, "distinct windows are distinct reads"


async def test_level_below_l3(make_app: AppFactory, sms: SmsGateway, sim: Sim) -> None:
    async with make_app(FAST) as (_, client):
        headers = bearer((await login(client, sms, "13700006006"))["access_token"])  # a new account: L2
        home = await client.get("/v1/me/home", headers=headers)
        singles = [await client.get(path, headers=headers) for path in SINGLE]
    assert home.status_code == 200, "the home screen still answers"
    for section in home.json()["sections"].values():
        assert section == {"state": "unavailable", "required_level": "L3"}
    for response in singles:
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert 'acr_values="L3"' in response.headers["www-authenticate"]
    for department in ("health", "transport", "socsec"):
        assert (await sim.http.get(f"{sim.url(department)}/_sim/stats")).json()["requests"] == {}


@pytest.mark.parametrize("path", ["/v1/me/home", *SINGLE, "/v1/me/data-access"])
async def test_requires_a_bearer_token(make_app: AppFactory, path: str) -> None:
    async with make_app(FAST) as (_, client):
        response = await client.get(path)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "query",
    [
        "/v1/me/socsec/contributions?year=1800",
        "/v1/me/socsec/contributions?year=abc",
        "/v1/me/transport/trips?days=0",
        "/v1/me/transport/trips?days=9999",
        "/v1/me/data-access?limit=0",
        "/v1/me/data-access?limit=101",
        "/v1/me/data-access?cursor=not-a-cursor",
        "/v1/me/data-access?cursor=WzEsMl0",
        "/v1/me/data-access?cursor=" + base64.urlsafe_b64encode(b'["2024-01-01T00:00:00Z",1e30]').decode(),
        "/v1/me/data-access?cursor="
        + base64.urlsafe_b64encode(b'["2024-01-01T00:00:00Z",99999999999999999999]').decode(),
        "/v1/me/data-access?cursor=" + base64.urlsafe_b64encode(b'["2024-01-01T00:00:00",1]').decode(),
    ],
)
async def test_bad_queries_are_400_problems(
    make_app: AppFactory, citizen: SignIn, sim: Sim, query: str, pool: Pool, vault: Vault
) -> None:
    async with make_app(FAST) as (_, client):
        response = await client.get(query, headers=await citizen(client))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_codes_summary_is_included_and_bounded_by_the_deadline(
    make_app: AppFactory, citizen: SignIn, sim: Sim
) -> None:
    async def summary(principal: Principal, _: SharedReads | None) -> list[Any]:
        return [{"type": "health", "account": principal.account_id == "" or "seen"}]

    async def slow(_: Principal, __: SharedReads | None) -> list[Any]:
        await asyncio.sleep(5)
        return [{"type": "late"}]

    async def broken(_: Principal, __: SharedReads | None) -> list[Any]:
        raise RuntimeError("codes domain bug")

    async with make_app(FAST, codes_summary=summary) as (app, client):
        headers = await citizen(client)
        ready = (await client.get("/v1/me/home", headers=headers)).json()
        assert (ready["codes"], ready["codes_state"]) == ([{"type": "health", "account": "seen"}], "ready")
        app.state.screens.codes_summary = slow
        started = time.perf_counter()
        late = await client.get("/v1/me/home", headers=headers)
        assert time.perf_counter() - started < FAST.deadline_ms / 1000 + MARGIN_S
        assert late.status_code == 200
        assert (late.json()["codes"], late.json()["codes_state"]) == ([], "late")
        app.state.screens.codes_summary = broken
        failed = await client.get("/v1/me/home", headers=headers)
    assert failed.status_code == 200
    assert (failed.json()["codes"], failed.json()["codes_state"]) == ([], "unavailable")
    assert {s["state"] for s in failed.json()["sections"].values()} == {"ok"}
