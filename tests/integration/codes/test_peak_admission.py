"""Peak mode and admission control: under overload tier 2 sheds, tier 0 (codes) keeps working."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client import REGISTRY

from bff.app import create_app
from bff.cli import main as onecity
from bff.settings import Settings
from codes import render
from codes.verifier import verify_code
from core.signing import Ed25519Signer
from services.simulators import RunningServer
from tests.integration.codes.conftest import ZHANG_SAN, App, Demo, PartnerHeaders, code_keys, issue, mint
from tests.support.asgi import running_app

OVERLOADED = "https://onecity.example/problems/overloaded"


@contextlib.asynccontextmanager
async def budget(settings: Settings, **peak: Any) -> AsyncIterator[App]:
    # The suite's thresholds are out of reach (tests/conftest.py): only the budget given here sheds.
    tight = msgspec.structs.replace(settings, peak=msgspec.structs.replace(settings.peak, **peak))
    render.clear_cache()
    application = create_app(tight)
    async with running_app(application) as client:
        yield App(application, client)


@contextlib.asynccontextmanager
async def slow_sms(simulators: dict[str, RunningServer], latency_ms: int) -> AsyncIterator[None]:
    sms = simulators["sms"].base_url
    async with httpx.AsyncClient() as control:
        await control.post(f"{sms}/_sim/faults", json={"latency_ms": latency_ms})
        try:
            yield
        finally:
            await control.delete(f"{sms}/_sim/faults")


def _shed_count(tier: str, reason: str) -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "onecity_admission"
        for sample in metric.samples
        if sample.name == "onecity_admission_total"
        and sample.labels.get("tier") == tier
        and sample.labels.get("decision") == "shed"
        and sample.labels.get("reason") == reason
    )


def _assert_shed(response: httpx.Response, tier: int) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "2"
    body = response.json()
    assert body["type"] == OVERLOADED and body["tier"] == tier


async def test_slow_tier2_requests_are_shed_while_tier0_is_served(
    settings: Settings, clean: None, simulators: dict[str, RunningServer]
) -> None:
    # Budget 4: tier 2 (sign-in codes, here slowed down by the SMS gateway) may hold 2 slots.
    async with budget(settings, max_in_flight=4) as app, slow_sms(simulators, 1500):
        otps = [
            asyncio.create_task(app.client.post("/v1/auth/otp", json={"phone": f"1310000000{i}"})) for i in range(6)
        ]
        await asyncio.sleep(0.4)  # the admitted ones now wait on the slow SMS gateway
        keys = await app.client.get("/v1/codes/keys")
        answers = await asyncio.gather(*otps)
    assert keys.status_code == 200  # tier 0 served while tier 2 is full
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [202, 202, 503, 503, 503, 503]
    for response in answers:
        if response.status_code == 503:
            _assert_shed(response, 2)


def _cli(*argv: str) -> int:
    return onecity(["peak", *argv])


async def test_peak_on_via_the_cli_sheds_tier2_and_serves_tier0(
    settings: Settings, clean: None, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ONECITY_REDIS_URL", redis_url)
    monkeypatch.setenv("ONECITY_LOG_LEVEL", "WARNING")
    async with budget(settings) as app:
        assert (await app.client.post("/v1/auth/otp", json={"phone": "13100000001"})).status_code == 202
        before = _shed_count("2", "peak")
        assert await asyncio.to_thread(_cli, "on") == 0
        await asyncio.sleep(1.2)  # every worker reads the switch twice a second
        shed = await app.client.post("/v1/auth/otp", json={"phone": "13100000002"})
        _assert_shed(shed, 2)
        assert (await app.client.get("/v1/codes/keys")).status_code == 200
        assert _shed_count("2", "peak") == before + 1
        capsys.readouterr()
        assert await asyncio.to_thread(_cli, "status") == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["peak"] is True
        assert await asyncio.to_thread(_cli, "off") == 0
        await asyncio.sleep(1.2)
        assert (await app.client.post("/v1/auth/otp", json={"phone": "13100000003"})).status_code == 202
        capsys.readouterr()
        assert await asyncio.to_thread(_cli, "status") == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["peak"] is False


async def test_one_partners_flood_does_not_fail_another_partners_verify(
    settings: Settings, clean: None, partner: PartnerHeaders, code_signer: Ed25519Signer
) -> None:
    payload = mint(code_signer)
    flooder, other = partner("flood-gates"), partner("metro-gates")
    async with budget(settings, max_in_flight=4, channel_max_in_flight=2) as app:

        async def flood() -> list[int]:
            answers = await asyncio.gather(
                *(app.client.post("/v1/codes/verify", json={"payload": payload}, headers=flooder) for _ in range(60))
            )
            return [r.status_code for r in answers]

        async def steady() -> list[int]:
            statuses = []
            for _ in range(10):
                response = await app.client.post("/v1/codes/verify", json={"payload": payload}, headers=other)
                statuses.append(response.status_code)
            return statuses

        flooded, served = await asyncio.gather(flood(), steady())
    assert served == [200] * 10  # the other partner never noticed
    assert 503 in flooded  # the flood was held to its own channel's share


async def test_the_code_answer_says_how_long_to_show_it_offline(app: App, demo: Demo) -> None:
    body = await issue(app.client, demo[ZHANG_SAN])
    expires = datetime.fromisoformat(body["expires_at"])
    until = datetime.fromisoformat(body["offline_display_until"])
    skew = app.state.codes.settings.clock_skew_s
    assert until == expires + timedelta(seconds=skew)
    keys = await code_keys(app.client)
    # Until then an offline verifier (with the default tolerance) accepts the code; after, not.
    assert verify_code(body["payload"], keys, now=until.timestamp() - 1, skew_s=skew).valid
    late = verify_code(body["payload"], keys, now=until.timestamp() + 1, skew_s=skew)
    assert not late.valid and late.reason == "expired"
