"""Refresh rotation, reuse detection, logout, session revocation."""

from __future__ import annotations

import asyncio

from httpx import AsyncClient as AsyncTestClient

from core.db import Pool
from core.redis import Redis
from services.departments.sms import SmsGateway
from tests.support.citizens import bearer, login


async def test_refresh_rotates_and_the_old_token_dies(client: AsyncTestClient, sms: SmsGateway) -> None:
    tokens = await login(client, sms, "13700000001")
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert (await client.get("/v1/me", headers=bearer(new["access_token"]))).status_code == 200
    again = await client.post("/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert again.status_code == 200


async def test_reuse_of_a_rotated_token_revokes_the_whole_family(
    client: AsyncTestClient, sms: SmsGateway, pool: Pool
) -> None:
    tokens = await login(client, sms, "13700000002")
    child = (await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
    grandchild = (await client.post("/v1/auth/refresh", json={"refresh_token": child["refresh_token"]})).json()

    # An attacker replays the first token: 401, and everything of this login dies.
    replay = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replay.status_code == 401
    assert replay.headers["content-type"].startswith("application/problem+json")
    assert (
        await client.post("/v1/auth/refresh", json={"refresh_token": grandchild["refresh_token"]})
    ).status_code == 401
    assert (await client.get("/v1/me", headers=bearer(grandchild["access_token"]))).status_code == 401
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert "auth.refresh.reuse" in actions


async def test_unknown_refresh_token_is_401(client: AsyncTestClient) -> None:
    response = await client.post("/v1/auth/refresh", json={"refresh_token": "rt.this-token-never-existed-anywhere"})
    assert response.status_code == 401


async def test_logout_stops_the_access_token_at_once(client: AsyncTestClient, sms: SmsGateway) -> None:
    tokens = await login(client, sms, "13700000003")
    headers = bearer(tokens["access_token"])
    assert (await client.post("/v1/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/v1/me", headers=headers)).status_code == 401
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).status_code == 401


async def test_ending_another_session_signs_that_device_out(
    client: AsyncTestClient, sms: SmsGateway, redis: Redis
) -> None:
    phone_a = await login(client, sms, "13700000004", device_id="phone-a")
    await redis.delete(*[k async for k in redis.scan_iter("oc:otp:*cool")])
    phone_b = await login(client, sms, "13700000004", device_id="phone-b")
    sessions = (await client.get("/v1/me/sessions", headers=bearer(phone_a["access_token"]))).json()["sessions"]
    other = next(s for s in sessions if not s["current"])
    ended = await client.delete(f"/v1/me/sessions/{other['id']}", headers=bearer(phone_a["access_token"]))
    assert ended.status_code == 204
    assert (await client.get("/v1/me", headers=bearer(phone_b["access_token"]))).status_code == 401
    assert (await client.get("/v1/me", headers=bearer(phone_a["access_token"]))).status_code == 200
    again = await client.delete(f"/v1/me/sessions/{other['id']}", headers=bearer(phone_a["access_token"]))
    assert again.status_code == 404


async def test_a_citizen_cannot_end_someone_elses_session(client: AsyncTestClient, sms: SmsGateway) -> None:
    alice = await login(client, sms, "13700000005")
    bob = await login(client, sms, "13700000006")
    bob_sid = (await client.get("/v1/me/sessions", headers=bearer(bob["access_token"]))).json()["sessions"][0]["id"]
    response = await client.delete(f"/v1/me/sessions/{bob_sid}", headers=bearer(alice["access_token"]))
    assert response.status_code == 404
    assert (await client.get("/v1/me", headers=bearer(bob["access_token"]))).status_code == 200


async def test_revocations_survive_a_redis_flush(client: AsyncTestClient, sms: SmsGateway, redis: Redis) -> None:
    tokens = await login(client, sms, "13700000007")
    headers = bearer(tokens["access_token"])
    await client.post("/v1/auth/logout", headers=headers)
    await redis.flushdb()  # Redis loses the revocation set ...
    assert (await client.get("/v1/me", headers=headers)).status_code == 401  # ... rebuilt from PostgreSQL


async def test_redis_flush_logs_nobody_out(client: AsyncTestClient, sms: SmsGateway, redis: Redis) -> None:
    tokens = await login(client, sms, "13700000008")
    await redis.flushdb()
    assert (await client.get("/v1/me", headers=bearer(tokens["access_token"]))).status_code == 200
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200


async def test_concurrent_refreshes_of_one_token_yield_one_winner(client: AsyncTestClient, sms: SmsGateway) -> None:
    tokens = await login(client, sms, "13700000009")
    body = {"refresh_token": tokens["refresh_token"]}
    results = await asyncio.gather(*(client.post("/v1/auth/refresh", json=body) for _ in range(5)))
    assert sorted(r.status_code for r in results).count(200) == 1
