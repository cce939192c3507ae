"""``security`` messages: a login on a new device, someone trying to bind your identity."""

from __future__ import annotations

from redis.asyncio import Redis

from services.departments.sms import SmsGateway
from tests.integration.hall.conftest import LI_SI, ZHANG_SAN, Hall, citizen
from tests.integration.messages.conftest import open_events
from tests.support.citizens import bearer, login


async def test_a_login_on_a_new_device_is_a_security_message_live_and_in_the_inbox(
    hall: Hall, sms: SmsGateway, redis: Redis
) -> None:
    phone = ZHANG_SAN[0]
    first = bearer((await login(hall.http, sms, phone))["access_token"])
    await redis.flushdb()  # the OTP resend cooldown (this test's own Redis database)
    again = bearer((await login(hall.http, sms, phone))["access_token"])  # the same device again
    assert (await hall.http.get("/v1/me/messages", headers=again)).json()["messages"] == []
    async with open_events(hall.http, first) as stream:
        await redis.delete(*(await redis.keys("*otp*")) or ["none"])
        await login(hall.http, sms, phone, device_id="device-2")
        got = await stream.next()
    assert got["json"]["category"] == "security" and "Test phone" in got["json"]["body"]
    assert phone not in got["data"]
    inbox = (await hall.http.get("/v1/me/messages", headers=first)).json()
    assert [m["category"] for m in inbox["messages"]] == ["security"] and inbox["unread_count"] == 1


async def test_someone_binding_your_identity_tells_you(hall: Hall, sms: SmsGateway) -> None:
    owner = await citizen(hall.http, sms, ZHANG_SAN)
    tokens = await login(hall.http, sms, LI_SI[0])
    intruder = bearer(tokens["access_token"])
    for _ in range(2):  # the same session trying twice: one message
        tried = await hall.http.post(
            "/v1/me/verification/real-name", json={"name": ZHANG_SAN[1], "id_number": ZHANG_SAN[2]}, headers=intruder
        )
        assert tried.status_code == 422, tried.text
    messages = (await hall.http.get("/v1/me/messages", headers=owner)).json()["messages"]
    assert [m["category"] for m in messages] == ["security"]
    assert ZHANG_SAN[2] not in str(messages) and LI_SI[0] not in str(messages)
    assert (await hall.http.get("/v1/me/messages", headers=intruder)).json()["messages"] == []
