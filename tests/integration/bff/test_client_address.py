"""Per-address limits see the client behind a trusted proxy, and never a client's own header."""

from __future__ import annotations

import msgspec

from bff.app import create_app
from bff.settings import Settings
from tests.support.asgi import running_app


def _limited(settings: Settings, trusted: tuple[str, ...]) -> Settings:
    # Two sends per address per hour; the test client's peer is 127.0.0.1.
    identity = msgspec.structs.replace(settings.identity, otp_sends_per_ip_per_hour=2)
    server = msgspec.structs.replace(settings.server, trusted_proxies=trusted)
    return msgspec.structs.replace(settings, identity=identity, server=server)


async def test_behind_a_trusted_proxy_each_client_has_its_own_limit(settings: Settings, clean: None) -> None:
    async with running_app(create_app(_limited(settings, ("127.0.0.1/32",)))) as client:
        for n in range(2):
            sent = await client.post(
                "/v1/auth/otp", json={"phone": f"1360000010{n}"}, headers={"X-Forwarded-For": "198.51.100.1"}
            )
            assert sent.status_code == 202
        refused = await client.post(
            "/v1/auth/otp", json={"phone": "13600000109"}, headers={"X-Forwarded-For": "198.51.100.1"}
        )
        assert refused.status_code == 429 and refused.json()["type"].endswith("/rate-limited")
        # Another citizen behind the same balancer is not affected.
        other = await client.post(
            "/v1/auth/otp", json={"phone": "13600000108"}, headers={"Forwarded": "for=198.51.100.2"}
        )
        assert other.status_code == 202


async def test_without_trusted_proxies_a_clients_own_header_is_ignored(settings: Settings, clean: None) -> None:
    async with running_app(create_app(_limited(settings, ()))) as client:
        for n in range(2):
            sent = await client.post(
                "/v1/auth/otp", json={"phone": f"1360000020{n}"}, headers={"X-Forwarded-For": f"198.51.100.{n}"}
            )
            assert sent.status_code == 202
        # A fresh forged address does not buy a fresh limit: the peer is the client.
        refused = await client.post(
            "/v1/auth/otp", json={"phone": "13600000209"}, headers={"X-Forwarded-For": "198.51.100.99"}
        )
        assert refused.status_code == 429 and refused.json()["type"].endswith("/rate-limited")
