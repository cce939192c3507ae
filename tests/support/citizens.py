"""Driving the citizen app's flows in tests: OTP from the SMS simulator, login, headers."""

from __future__ import annotations

import re
from typing import Any

from httpx import AsyncClient as AsyncTestClient

from services.departments.sms import SmsGateway

__all__ = ["bearer", "latest_otp", "login", "request_otp"]

_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


async def latest_otp(sms: SmsGateway, phone: str) -> str:
    """The most recent code the SMS simulator delivered to ``phone``."""
    outbox = await sms.outbox(phone)
    assert outbox.messages, "no SMS was sent"
    # Only code messages: a security alert (message centre's SMS fallback after a login on a
    # new device) may reach the same phone at any time.
    coded = [m for m in outbox.messages if _CODE.search(m.text)]
    assert coded, "no SMS carries a 6-digit code"
    newest = max(coded, key=lambda m: m.sent_at)
    match = _CODE.search(newest.text)
    assert match is not None
    return match.group(1)


async def request_otp(client: AsyncTestClient, sms: SmsGateway, phone: str) -> str:
    """Ask for a code and read it from the outbox."""
    response = await client.post("/v1/auth/otp", json={"phone": phone})
    assert response.status_code == 202, response.text
    return await latest_otp(sms, phone)


async def login(
    client: AsyncTestClient, sms: SmsGateway, phone: str, *, device_id: str = "device-1", **extra: Any
) -> dict[str, Any]:
    """Full OTP login; returns the token response body."""
    code = await request_otp(client, sms, phone)
    response = await client.post(
        "/v1/auth/login",
        json={
            "phone": phone,
            "otp": code,
            "device": {"id": device_id, "name": "Test phone", "platform": "ios"},
            **extra,
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
