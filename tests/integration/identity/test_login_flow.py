"""The whole citizen flow, for the three demo citizens and for a new phone."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from httpx import AsyncClient as AsyncTestClient

from core.crypto import Vault
from core.db import Pool
from identity.seed import DEMO_CITIZENS, seed_demo_citizens
from services.departments.sms import SmsGateway
from services.simulators import registry_name
from tests.support.citizens import bearer, login, request_otp

DEVICE = {"id": "device-1", "name": "Test phone", "platform": "ios"}


@pytest.mark.parametrize(("phone", "name", "id_number"), DEMO_CITIZENS)
async def test_demo_citizen_logs_in_at_l3_with_masked_identity(
    client: AsyncTestClient, sms: SmsGateway, pool: Pool, vault: Vault, phone: str, name: str, id_number: str
) -> None:
    await seed_demo_citizens(pool, vault)
    tokens = await login(client, sms, phone)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 600
    me = (await client.get("/v1/me", headers=bearer(tokens["access_token"]))).json()
    assert me["level"] == "L3"
    assert me["name"] == name[0] + "*"
    assert me["id_number"] == id_number[:4] + "*" * 10 + id_number[-4:]
    assert me["phone"] == phone[:3] + "****" + phone[-4:]
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["acr"] == "L3" and claims["sub"] == me["id"]
    assert jwt.get_unverified_header(tokens["access_token"])["typ"] == "at+jwt"


async def test_new_phone_signs_up_at_l2_then_steps_up_to_l3_and_l4(client: AsyncTestClient, sms: SmsGateway) -> None:
    tokens = await login(client, sms, "13912345678")
    headers = bearer(tokens["access_token"])
    me = (await client.get("/v1/me", headers=headers)).json()
    assert me["level"] == "L2" and me["name"] is None and me["id_number"] is None

    # Real-person before real-name is a step-up challenge for L3 (RFC 9470).
    early = await client.post(
        "/v1/me/verification/real-person", json={"liveness_token": "live-abcdefghijklmnop"}, headers=headers
    )
    assert early.status_code == 401
    assert 'acr_values="L3"' in early.headers["www-authenticate"]
    assert "insufficient_user_authentication" in early.headers["www-authenticate"]

    id_number = "110101200001010010"
    verified = await client.post(
        "/v1/me/verification/real-name",
        json={"name": registry_name(id_number), "id_number": id_number},
        headers=headers,
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["level"] == "L3"

    refreshed = (await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
    assert jwt.decode(refreshed["access_token"], options={"verify_signature": False})["acr"] == "L3"

    failed = await client.post(
        "/v1/me/verification/real-person",
        json={"liveness_token": "spoof-abcdefghijklmnop"},
        headers=bearer(refreshed["access_token"]),
    )
    assert failed.status_code == 403
    passed = await client.post(
        "/v1/me/verification/real-person",
        json={"liveness_token": "live-abcdefghijklmnop"},
        headers=bearer(refreshed["access_token"]),
    )
    assert passed.status_code == 200 and passed.json()["level"] == "L4"


async def test_real_name_rejects_bad_check_digit_before_asking_the_registry(
    client: AsyncTestClient, sms: SmsGateway
) -> None:
    headers = bearer((await login(client, sms, "13912345679"))["access_token"])
    response = await client.post(
        "/v1/me/verification/real-name", json={"name": "张三", "id_number": "110101199003070012"}, headers=headers
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "110101199003070012" not in response.text


async def test_real_name_mismatch_is_refused(client: AsyncTestClient, sms: SmsGateway) -> None:
    headers = bearer((await login(client, sms, "13912345680"))["access_token"])
    response = await client.post(
        "/v1/me/verification/real-name", json={"name": "不是我", "id_number": "110101200001010010"}, headers=headers
    )
    assert response.status_code == 422
    assert (await client.get("/v1/me", headers=headers)).json()["level"] == "L2"


async def test_one_id_number_cannot_verify_two_accounts(client: AsyncTestClient, sms: SmsGateway) -> None:
    id_number = "110101200001010010"
    body = {"name": registry_name(id_number), "id_number": id_number}
    first = bearer((await login(client, sms, "13912345681"))["access_token"])
    second = bearer((await login(client, sms, "13912345682"))["access_token"])
    assert (await client.post("/v1/me/verification/real-name", json=body, headers=first)).status_code == 200
    again = await client.post("/v1/me/verification/real-name", json=body, headers=second)
    # Issue 11: the same answer as "no match" (422), so the endpoint is no registry oracle.
    assert again.status_code == 422
    assert again.json()["type"].endswith("/real-name-not-verified")
    assert (await client.get("/v1/me", headers=second)).json()["level"] == "L2"


async def test_wrong_otp_is_401_and_code_still_usable(client: AsyncTestClient, sms: SmsGateway) -> None:
    phone = "13912345683"
    code = await request_otp(client, sms, phone)
    wrong = "000000" if code != "000000" else "111111"
    bad = await client.post("/v1/auth/login", json={"phone": phone, "otp": wrong, "device": DEVICE})
    assert bad.status_code == 401
    assert bad.json()["attempts_left"] == 4 if "attempts_left" in bad.json() else True
    good = await client.post("/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE})
    assert good.status_code == 200
    reused = await client.post("/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE})
    assert reused.status_code == 401  # single use


async def test_same_phone_same_account_across_logins(client: AsyncTestClient, sms: SmsGateway, redis: Any) -> None:
    first = await login(client, sms, "13912345684", device_id="phone-a")
    await redis.flushdb()  # clear the resend cooldown
    second = await login(client, sms, "13912345684", device_id="phone-b")
    assert first["account"]["id"] == second["account"]["id"]
    sessions = (await client.get("/v1/me/sessions", headers=bearer(second["access_token"]))).json()["sessions"]
    assert len(sessions) == 2
    assert [s["current"] for s in sessions].count(True) == 1
