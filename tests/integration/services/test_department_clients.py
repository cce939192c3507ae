"""Each department client against its simulator, and how failures surface as DepartmentError."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.signing import Ed25519Signer
from services import (
    DepartmentDroppedError,
    DepartmentEndpoints,
    DepartmentError,
    DepartmentMalformedError,
    DepartmentRejectedError,
    Departments,
    DepartmentTimeoutError,
    DepartmentUnavailableError,
    ServiceTokenMinter,
    build_departments,
)
from services.simulators import RunningServer

Simulators = dict[str, RunningServer]
TokenFactory = Callable[..., str]

ZHANG_SAN = "110101199003070011"
LI_SI = "110101198512120019"
WANG_WU = "110101197706150019"
PURPOSE = "home-screen"


async def test_health_client(departments: Departments) -> None:
    zhang = await departments.health.tests(ZHANG_SAN, purpose=PURPOSE)
    assert zhang.tests[0].result == "negative"
    assert zhang.tests[0].sampled_at.tzinfo is not None
    li = await departments.health.tests(LI_SI, purpose=PURPOSE)
    assert li.tests[0].result == "positive"
    wang_risk = await departments.health.risk(WANG_WU, purpose=PURPOSE)
    assert wang_risk.risk_area_visits
    assert wang_risk.quarantine_until is None
    li_risk = await departments.health.risk(LI_SI, purpose=PURPOSE)
    assert li_risk.quarantine_until is not None
    doses = await departments.health.vaccinations(ZHANG_SAN, purpose=PURPOSE)
    assert [dose.dose for dose in doses.doses] == [1, 2, 3]
    assert isinstance(doses.doses[0].date, dt.date)


async def test_transport_client(departments: Departments) -> None:
    card = await departments.transport.card(WANG_WU, purpose=PURPOSE)
    assert card.status == "active"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=14)
    trips = await departments.transport.trips(WANG_WU, since, purpose=PURPOSE)
    assert trips.trips
    assert all(trip.at >= since for trip in trips.trips)
    with pytest.raises(ValueError, match="timezone"):
        await departments.transport.trips(WANG_WU, dt.datetime(2024, 1, 1), purpose=PURPOSE)


async def test_socsec_client(departments: Departments) -> None:
    card = await departments.socsec.card(LI_SI, purpose=PURPOSE)
    assert card.status == "active"
    assert card.issued_city == "北京市"
    year = dt.datetime.now(dt.UTC).year - 1
    contributions = await departments.socsec.contributions(LI_SI, year, purpose=PURPOSE)
    assert len(contributions.months) == 12
    assert contributions.months[0].month == f"{year}-01"


async def test_registry_liveness_sms_miniprogram_clients(departments: Departments) -> None:
    assert (await departments.registry.verify("王五", WANG_WU)).match is True
    assert (await departments.registry.verify("王六", WANG_WU)).match is False

    assert (await departments.liveness.check("live-42", id_number=ZHANG_SAN)).passed is True
    failed = await departments.liveness.check("photo-of-a-photo", id_number=ZHANG_SAN)
    assert failed.passed is False

    await departments.sms.send("13600000001", "您的验证码是 654321")
    outbox = await departments.sms.outbox("13600000001")
    assert [m.text for m in outbox.messages] == ["您的验证码是 654321"]

    session = await departments.miniprogram.code2session("mp-erin-abc")
    assert session.openid
    assert session.unionid
    assert (await departments.miniprogram.code2session("mp-nounion_frank-1")).unionid is None
    with pytest.raises(DepartmentRejectedError) as caught:
        await departments.miniprogram.code2session("mp-erin-abc")  # codes are single-use
    assert caught.value.kind == "rejected"
    assert caught.value.upstream_status == 400
    assert caught.value.department == "miniprogram"


async def test_id_number_travels_only_in_the_token(endpoints: DepartmentEndpoints, minter: ServiceTokenMinter) -> None:
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        departments = build_departments(endpoints, http, minter)
        await departments.health.tests(ZHANG_SAN, purpose=PURPOSE)
        await departments.health.vaccinations(ZHANG_SAN, purpose=PURPOSE)
        await departments.health.risk(ZHANG_SAN, purpose=PURPOSE)
        await departments.transport.card(ZHANG_SAN, purpose=PURPOSE)
        await departments.transport.trips(ZHANG_SAN, dt.datetime.now(dt.UTC), purpose=PURPOSE)
        await departments.socsec.card(ZHANG_SAN, purpose=PURPOSE)
        await departments.socsec.contributions(ZHANG_SAN, 2024, purpose=PURPOSE)
        await departments.liveness.check("live-1", id_number=ZHANG_SAN)
    assert len(seen) == 8
    for request in seen:
        assert ZHANG_SAN not in str(request.url)
        assert ZHANG_SAN.encode() not in request.content
        assert request.headers["authorization"].startswith("Bearer ")


async def fault(http: httpx.AsyncClient, base_url: str, **faults: object) -> None:
    (await http.post(f"{base_url}/_sim/faults", json=faults)).raise_for_status()


async def test_503_is_unavailable(departments: Departments, http: httpx.AsyncClient, simulators: Simulators) -> None:
    await fault(http, simulators["health"].base_url, error_rate=1.0)
    with pytest.raises(DepartmentUnavailableError) as caught:
        await departments.health.tests(ZHANG_SAN, purpose=PURPOSE)
    error = caught.value
    assert isinstance(error, DepartmentError)
    assert (error.kind, error.upstream_status, error.department, error.retryable) == (
        "unavailable",
        503,
        "health",
        True,
    )
    assert ZHANG_SAN not in str(error)
    assert ZHANG_SAN not in repr(error)
    assert error.status == 503  # what OneCity itself answers if nobody handles it


async def test_malformed_body(departments: Departments, http: httpx.AsyncClient, simulators: Simulators) -> None:
    await fault(http, simulators["socsec"].base_url, malformed=True)
    with pytest.raises(DepartmentMalformedError) as caught:
        await departments.socsec.card(ZHANG_SAN, purpose=PURPOSE)
    assert caught.value.kind == "malformed"


async def test_dropped_connection(departments: Departments, http: httpx.AsyncClient, simulators: Simulators) -> None:
    await fault(http, simulators["transport"].base_url, drop=True)
    with pytest.raises(DepartmentDroppedError) as caught:
        await departments.transport.card(ZHANG_SAN, purpose=PURPOSE)
    assert caught.value.kind == "dropped"
    assert caught.value.upstream_status is None


async def test_timeout(
    endpoints: DepartmentEndpoints, minter: ServiceTokenMinter, http: httpx.AsyncClient, simulators: Simulators
) -> None:
    await fault(http, simulators["health"].base_url, latency_ms=1000)
    async with httpx.AsyncClient(timeout=0.1) as impatient:
        departments = build_departments(endpoints, impatient, minter)
        with pytest.raises(DepartmentTimeoutError) as caught:
            await departments.health.risk(ZHANG_SAN, purpose=PURPOSE)
    assert caught.value.kind == "timeout"


async def test_per_department_timeout_override(
    endpoints: DepartmentEndpoints, minter: ServiceTokenMinter, http: httpx.AsyncClient, simulators: Simulators
) -> None:
    await fault(http, simulators["registry"].base_url, hang=True)
    departments = build_departments(endpoints, http, minter, timeouts={"registry": 0.1})
    with pytest.raises(DepartmentTimeoutError):
        await departments.registry.verify("张三", ZHANG_SAN)


async def test_unreachable_department(minter: ServiceTokenMinter, http: httpx.AsyncClient) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    departments = build_departments(DepartmentEndpoints.local(ports={"sms": port}), http, minter)
    with pytest.raises(DepartmentUnavailableError) as caught:
        await departments.sms.send("13800000001", "hi")
    assert caught.value.upstream_status is None


async def test_refused_token_is_rejected(endpoints: DepartmentEndpoints, http: httpx.AsyncClient) -> None:
    stranger = Ed25519Signer("not-published", Ed25519PrivateKey.generate())
    departments = build_departments(endpoints, http, ServiceTokenMinter(lambda: stranger))
    with pytest.raises(DepartmentRejectedError) as caught:
        await departments.health.tests(ZHANG_SAN, purpose=PURPOSE)
    assert caught.value.upstream_status == 401


async def test_unknown_citizen_is_rejected(departments: Departments) -> None:
    with pytest.raises(DepartmentRejectedError) as caught:
        await departments.health.tests("110101199003070012", purpose=PURPOSE)  # bad check digit
    assert caught.value.upstream_status == 404
