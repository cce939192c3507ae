"""Running simulators in-process: free ports, clean stops, and the CLI entry's argument checks."""

from __future__ import annotations

import httpx
import pytest

from services import StaticJwks
from services.simulators import DEFAULT_PORTS, SIMULATORS, serve, start_in_process


def test_catalogue() -> None:
    assert set(SIMULATORS) == set(DEFAULT_PORTS)
    assert DEFAULT_PORTS == {
        "health": 8101,
        "transport": 8102,
        "socsec": 8103,
        "registry": 8104,
        "liveness": 8105,
        "sms": 8106,
        "miniprogram": 8107,
        "hukou": 8108,
        "education": 8109,
        "push": 8110,
    }


async def test_start_on_a_free_port_and_stop() -> None:
    app = SIMULATORS["sms"](StaticJwks({"keys": []}))
    server = await start_in_process(app)
    assert server.port > 0
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{server.base_url}/_sim/stats")).status_code == 200
        await server.stop()
        await server.stop()  # idempotent
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{server.base_url}/_sim/stats")


async def test_busy_port_is_an_error() -> None:
    app = SIMULATORS["sms"](StaticJwks({"keys": []}))
    async with await start_in_process(app) as server:
        with pytest.raises(OSError, match="in use"):
            await start_in_process(SIMULATORS["sms"](StaticJwks({"keys": []})), port=server.port)


def test_serve_rejects_unknown_simulators() -> None:
    with pytest.raises(ValueError, match="unknown simulator"):
        serve("police", jwks_url="http://127.0.0.1:8000/.well-known/jwks.json")
