"""Mini-program login: the platform identity is linked only after an OTP proves the phone."""

from __future__ import annotations

from httpx import AsyncClient as AsyncTestClient

from services.departments.sms import SmsGateway
from tests.support.citizens import bearer, request_otp

DEVICE = {"id": "mp-device", "name": "WeChat", "platform": "wechat"}


async def test_first_login_needs_an_otp_link_then_logs_in_directly(client: AsyncTestClient, sms: SmsGateway) -> None:
    first = await client.post("/v1/auth/miniprogram", json={"platform": "wechat", "code": "mp-alice-1"})
    assert first.status_code == 202
    body = first.json()
    assert body["link_required"] is True and "access_token" not in body

    phone = "13300000001"
    code = await request_otp(client, sms, phone)
    linked = await client.post(
        "/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE, "link_token": body["link_token"]}
    )
    assert linked.status_code == 200
    account_id = linked.json()["account"]["id"]

    again = await client.post("/v1/auth/miniprogram", json={"platform": "wechat", "code": "mp-alice-2"})
    assert again.status_code == 200
    assert again.json()["account"]["id"] == account_id
    assert (await client.get("/v1/me", headers=bearer(again.json()["access_token"]))).status_code == 200


async def test_link_token_is_single_use_and_needs_the_otp(client: AsyncTestClient, sms: SmsGateway) -> None:
    link = (await client.post("/v1/auth/miniprogram", json={"platform": "wechat", "code": "mp-bob-1"})).json()
    phone = "13300000002"
    code = await request_otp(client, sms, phone)
    wrong = await client.post(
        "/v1/auth/login",
        json={
            "phone": phone,
            "otp": "000000" if code != "000000" else "111111",
            "device": DEVICE,
            "link_token": link["link_token"],
        },
    )
    assert wrong.status_code == 401
    ok = await client.post(
        "/v1/auth/login", json={"phone": phone, "otp": code, "device": DEVICE, "link_token": link["link_token"]}
    )
    assert ok.status_code == 200
    # Still not linked to anyone else, and not silently re-linkable.
    unlinked = await client.post("/v1/auth/miniprogram", json={"platform": "wechat", "code": "mp-carol-1"})
    assert unlinked.status_code == 202


async def test_invalid_or_reused_platform_code_is_401(client: AsyncTestClient) -> None:
    assert (
        await client.post("/v1/auth/miniprogram", json={"platform": "wechat", "code": "garbage"})
    ).status_code == 401
    assert (
        await client.post("/v1/auth/miniprogram", json={"platform": "wechat", "code": "mp-dave-1"})
    ).status_code == 202
    reused = await client.post("/v1/auth/miniprogram", json={"platform": "wechat", "code": "mp-dave-1"})
    assert reused.status_code == 401
