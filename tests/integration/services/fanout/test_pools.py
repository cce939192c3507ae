"""The department pools over real HTTP: the same answers and the same error kinds with aiohttp
under httpx as with httpx's own transport (the department clients and the breakers rely on
the kinds)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
import msgspec
import pytest

from services import DepartmentError, DepartmentHttp, Departments, SocsecCard
from services.departments import DepartmentEndpoints
from services.fanout import DepartmentPools, PoolSettings
from services.tokens import ServiceTokenMinter
from tests.integration.services.conftest import ZHANG_SAN
from tests.integration.services.fanout.conftest import Simulators, closed_port, faults

CLIENTS = ("aiohttp", "httpcore")


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> Literal["aiohttp", "httpcore"]:
    name: Literal["aiohttp", "httpcore"] = request.param
    return name


@pytest.fixture
async def pools(
    client: Literal["aiohttp", "httpcore"], endpoints: DepartmentEndpoints, minter: ServiceTokenMinter
) -> AsyncIterator[DepartmentPools]:
    made = DepartmentPools(endpoints, minter, PoolSettings(client=client))
    yield made
    await made.aclose()


async def test_answers_through_either_transport(pools: DepartmentPools, departments: Departments) -> None:
    plain = pools.wrap(departments)
    card = await plain.socsec.card(ZHANG_SAN, purpose="test")
    assert isinstance(card, SocsecCard)
    for _ in range(3):  # kept-alive connections are reused
        assert await plain.socsec.card(ZHANG_SAN, purpose="test") == card
    assert (await plain.health.tests(ZHANG_SAN, purpose="test")).tests


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ({"error_rate": 1.0}, "unavailable"),
        ({"drop": True}, "dropped"),
        ({"malformed": True}, "malformed"),
    ],
)
async def test_faults_give_the_same_error_kinds(
    pools: DepartmentPools,
    departments: Departments,
    http: httpx.AsyncClient,
    simulators: Simulators,
    fault: dict[str, Any],
    kind: str,
) -> None:
    plain = pools.wrap(departments)
    await faults(http, simulators, "socsec", **fault)
    with pytest.raises(DepartmentError) as raised:
        await plain.socsec.card(ZHANG_SAN, purpose="test")
    assert raised.value.kind == kind
    assert ZHANG_SAN not in str(raised.value)


async def test_a_refused_connection_is_unavailable(
    client: Literal["aiohttp", "httpcore"],
    endpoints: DepartmentEndpoints,
    minter: ServiceTokenMinter,
    departments: Departments,
) -> None:
    down = msgspec.structs.replace(endpoints, socsec=f"http://127.0.0.1:{closed_port()}")
    made = DepartmentPools(down, minter, PoolSettings(client=client))
    try:
        with pytest.raises(DepartmentError) as raised:
            await made.wrap(departments).socsec.card(ZHANG_SAN, purpose="test")
    finally:
        await made.aclose()
    assert raised.value.kind == "unavailable"


async def test_an_answer_past_the_read_timeout_is_a_timeout(
    pools: DepartmentPools,
    endpoints: DepartmentEndpoints,
    minter: ServiceTokenMinter,
    http: httpx.AsyncClient,
    simulators: Simulators,
) -> None:
    # The pools' read timeout is a 5 s backstop; a per-department override shows the mapping.
    socsec = DepartmentHttp("socsec", endpoints.socsec, pools.clients["socsec"], minter, timeout=0.2)
    await faults(http, simulators, "socsec", hang=True)
    with pytest.raises(DepartmentError) as raised:
        await socsec.get("/v1/me/card", SocsecCard, subject=ZHANG_SAN, scope="socsec:card", purpose="test")
    assert raised.value.kind == "timeout"
