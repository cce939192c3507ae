"""Every department read is audited (batched) and the citizen can page through them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient as AsyncTestClient

from core.db import Pool
from identity.seed import DEMO_CITIZENS
from tests.integration.bff.screens.conftest import FAST, LI_SI_PHONE, AppFactory, Sim

SignIn = Callable[..., Awaitable[dict[str, str]]]


async def data_access(client: AsyncTestClient, headers: dict[str, str], want: int) -> list[dict[str, Any]]:
    """Walk every page (limit 2), waiting for the batcher to write at least ``want`` rows."""
    for _ in range(50):
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            response = await client.get("/v1/me/data-access", headers=headers, params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["items"]) <= 2
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if cursor is None:
                break
        if len(items) >= want:
            return items
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(items)} of {want} reads were recorded")


async def test_reads_are_recorded_and_listed_newest_first(
    make_app: AppFactory, citizen: SignIn, sim: Sim, pool: Pool
) -> None:
    await sim.faults("socsec", error_rate=1.0)
    async with make_app(FAST) as (app, client):
        headers = await citizen(client)
        assert (await client.get("/v1/me/home", headers=headers)).status_code == 200
        assert (await client.get("/v1/me/home", headers=headers)).status_code == 200
        # A read through the plain Protocol face (as the codes domain would make): no account id.
        _, _, id_number = DEMO_CITIZENS[0]
        await app.state.resources.fanout.as_departments().transport.card(id_number, purpose="transit-code")
        items = await data_access(client, headers, want=9)
        other = await citizen(client, LI_SI_PHONE)
        others = (await client.get("/v1/me/data-access", headers=other)).json()
    assert len(items) == 9, "4 reads per home screen (tests, risk, transport card, socsec card) + 1"
    assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True)
    assert len({(i["at"], i["resource"], i["department"]) for i in items}) == 9, "no page repeats a row"
    newest = items[0]
    assert newest == {
        "kind": "department_read",
        "at": newest["at"],
        "who": {"type": "onecity"},
        "department": "transport",
        "resource": "card",
        "purpose": "transit-code",
        "outcome": "success",
        "source": "cache",
        "reader": "onecity",
    }
    assert all(i["kind"] == "department_read" for i in items)
    home = items[1:]
    assert {(i["department"], i["resource"]) for i in home} == {
        ("health", "tests"),
        ("health", "risk"),
        ("transport", "card"),
        ("socsec", "card"),
    }
    assert {i["purpose"] for i in home} == {"home-screen"}
    assert {i["outcome"] for i in home if i["department"] == "socsec"} == {"failure"}
    assert {i["outcome"] for i in home if i["department"] != "socsec"} == {"success"}
    assert others == {"items": []}, "a citizen sees only reads of their own data"
    rows = await pool.fetch("SELECT * FROM audit_log WHERE action = 'data.read'")
    assert len(rows) == 9
    assert id_number not in str([dict(r) for r in rows]), "no ID number in clear in the audit log"
